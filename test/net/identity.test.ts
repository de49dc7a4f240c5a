import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigInvalidError, NoSpaceError } from '../../src/errors.ts'
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../src/net/identity.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'haul-identity-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('loadOrCreateIdentity', () => {
  it('creates an Ed25519 key with mode 0600 and returns the same key afterwards', async () => {
    const data = join(dir, 'nested', 'data')
    const a = await loadOrCreateIdentity(data)
    expect(a.type).toBe('Ed25519')
    const st = await stat(join(data, IDENTITY_FILE))
    expect(st.mode & 0o777).toBe(0o600)
    const b = await loadOrCreateIdentity(data)
    expect(peerIdFromPrivateKey(b).toString()).toBe(peerIdFromPrivateKey(a).toString())
  })

  it('concurrent first starts agree on one identity', async () => {
    const keys = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateIdentity(dir)))
    const ids = new Set(keys.map((k) => peerIdFromPrivateKey(k).toString()))
    expect(ids.size).toBe(1)
  })

  it.each([
    ['garbage', new Uint8Array([1, 2, 3, 4, 5])],
    ['empty', new Uint8Array(0)],
    ['oversized', new Uint8Array(10_000)],
  ])('a %s file is a ConfigInvalidError naming the file to delete', async (_name, bytes) => {
    const file = join(dir, IDENTITY_FILE)
    await writeFile(file, bytes)
    const err = await loadOrCreateIdentity(dir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigInvalidError)
    expect((err as Error).message).toContain(`Delete ${file}`)
  })

  it('a key of another type is refused', async () => {
    const file = join(dir, IDENTITY_FILE)
    await writeFile(file, privateKeyToProtobuf(await generateKeyPair('secp256k1')))
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(/secp256k1/)
  })
})

describe.skipIf(process.getuid?.() !== 0)(
  'loadOrCreateIdentity on a full disk (mounts a tmpfs: needs root)',
  () => {
    it('is NO_SPACE naming the data folder, not CONFIG_INVALID', async () => {
      const base = await mkdtemp(join(tmpdir(), 'haul-id-full-'))
      const mount = join(base, 'small')
      await mkdir(mount)
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mount])
      try {
        // Every page taken: the key's file gets none.
        await writeFile(join(mount, 'filler'), new Uint8Array(16 * 1024)).catch(() => {})
        const err = await loadOrCreateIdentity(join(mount, 'data')).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(NoSpaceError)
        expect((err as Error).message).toMatch(/--data-dir/)
      } finally {
        execFileSync('umount', ['-l', mount])
        await rm(base, { recursive: true, force: true })
      }
    })
  },
)
