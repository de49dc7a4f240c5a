import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeAtomically, writeOnce } from '../../src/storage/write-atomically.ts'
import { failure } from '../support/errors.ts'
import { tempDir } from '../support/files.ts'

describe('writeAtomically', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('replaces the file whole, leaving nothing beside it', async () => {
    const path = join(dir, 'record.json')
    await writeAtomically(path, 'first')
    await writeAtomically(path, 'second', { mode: 0o600 })
    expect(await readFile(path, 'utf8')).toBe('second')
    expect(await readdir(dir)).toEqual(['record.json'])
  })

  it('a rename that fails (a folder in the way) is a haul error, and the temporary file is removed', async () => {
    const sub = join(dir, 'blocked')
    await mkdir(join(sub, 'record.json'), { recursive: true })
    const err = await failure(writeAtomically(join(sub, 'record.json'), 'data'))
    expect(err.code).toBe('DESTINATION_INVALID')
    expect(await readdir(sub)).toEqual(['record.json'])
  })
})

describe('writeOnce', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('never replaces a file that holds the bytes (another publish may be reading it); a damaged one is', async () => {
    const path = join(dir, 'named-by-content.manifest')
    const bytes = Buffer.from('the manifest')
    await Promise.all([writeOnce(path, bytes), writeOnce(path, bytes)])
    const first = await stat(path)
    await Promise.all([writeOnce(path, bytes), writeOnce(path, bytes)])
    expect((await stat(path)).ino).toBe(first.ino)
    await writeFile(path, 'the manifesT')
    await writeOnce(path, bytes)
    expect(await readFile(path, 'utf8')).toBe('the manifest')
    expect(await readdir(dir)).toEqual(['named-by-content.manifest'])
  })
})
