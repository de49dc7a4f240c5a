import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { admits, admitsUnknown, newSecret, SECRET_BYTES } from '../../src/serve/access.ts'
import { SecretStore } from '../../src/serve/secret-store.ts'
import { tempDir } from '../support/files.ts'

describe('admits', () => {
  const a = newSecret()
  const b = newSecret()

  it('public content admits anyone; guarded content only a request presenting one of its secrets', () => {
    expect(a).toHaveLength(SECRET_BYTES)
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
    expect(admits(undefined, undefined)).toBe(true)
    expect(admits(undefined, a)).toBe(true)
    expect(admits([a], Uint8Array.from(a))).toBe(true)
    expect(admits([a, b], Uint8Array.from(b))).toBe(true)
    expect(admits([a], undefined)).toBe(false)
    expect(admits([a], b)).toBe(false)
    expect(admits([a], a.subarray(1))).toBe(false)
    expect(admits([a], new Uint8Array(SECRET_BYTES))).toBe(false)
    // No secrets at all is no one, not everyone.
    expect(admits([], a)).toBe(false)
  })

  it('unknown content admits no one, whatever is presented', () => {
    for (const presented of [undefined, a, new Uint8Array(3)]) expect(admitsUnknown(presented)).toBe(false)
  })
})

describe('SecretStore', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const cid = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  const hex = (n: number): string => Buffer.from(cid(n)).toString('hex')
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-secrets-'))
  })
  afterAll(() => cleanup())

  it('without a data folder: one secret per content id while kept, a new one once forgotten', async () => {
    const store = new SecretStore(undefined)
    const [x, y] = await Promise.all([store.secretOf(cid(1)), store.secretOf(cid(1))])
    expect(y).toBe(x)
    const other = await store.secretOf(cid(2))
    expect(Buffer.from(other).equals(Buffer.from(x))).toBe(false)
    await store.forget(cid(1))
    expect(Buffer.from(await store.secretOf(cid(1))).equals(Buffer.from(x))).toBe(false)
  })

  it('with a data folder: kept as 16 bytes, mode 0600, shared by two engines on the folder, dropped by forget', async () => {
    const dataDir = join(dir, 'data')
    const [x, y] = await Promise.all([
      new SecretStore(dataDir).secretOf(cid(3)),
      new SecretStore(dataDir).secretOf(cid(3)),
    ])
    expect(Buffer.from(y).equals(Buffer.from(x))).toBe(true)
    const file = join(dataDir, 'secrets', hex(3))
    expect(new Uint8Array(await readFile(file))).toEqual(x)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await stat(join(dataDir, 'secrets'))).mode & 0o777).toBe(0o700)
    const later = new SecretStore(dataDir)
    expect(await later.secretOf(cid(3))).toEqual(x)
    await later.forget(cid(3))
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' })
    // A publish right after an unpublish, the file's removal still under way: a new secret.
    const kept = await later.secretOf(cid(3))
    void later.forget(cid(3))
    const renewed = await later.secretOf(cid(3))
    expect(Buffer.from(renewed).equals(Buffer.from(kept))).toBe(false)
    expect(new Uint8Array(await readFile(file))).toEqual(renewed)
  })

  it('kept: the secret a content id has, none made; none once forgotten', async () => {
    const dataDir = join(dir, 'data-kept')
    const store = new SecretStore(dataDir)
    expect(await store.kept(cid(6))).toBeUndefined()
    await expect(stat(join(dataDir, 'secrets', hex(6)))).rejects.toMatchObject({ code: 'ENOENT' })
    const made = await store.secretOf(cid(6))
    expect(await new SecretStore(dataDir).kept(cid(6))).toEqual(made)
    await store.forget(cid(6))
    expect(await store.kept(cid(6))).toBeUndefined()
    expect(await new SecretStore(undefined).kept(cid(6))).toBeUndefined()
  })

  it('a damaged secret file is replaced by a new secret', async () => {
    const dataDir = join(dir, 'damaged')
    await new SecretStore(dataDir).secretOf(cid(4))
    const file = join(dataDir, 'secrets', hex(4))
    await writeFile(file, 'short')
    const fresh = await new SecretStore(dataDir).secretOf(cid(4))
    expect(fresh).toHaveLength(SECRET_BYTES)
    expect(new Uint8Array(await readFile(file))).toEqual(fresh)
  })
})
