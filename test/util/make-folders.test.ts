import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeFolders } from '../../src/util/make-folders.ts'
import { tempDir } from '../support/files.ts'

describe('makeFolders (mkdir -p)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-make-folders-'))
  })
  afterAll(() => cleanup())

  it('makes the missing folders with the mode, returns the first it made, undefined when all were there', async () => {
    const deep = join(dir, 'a', 'b', 'c')
    expect(await makeFolders(deep, 0o700)).toBe(join(dir, 'a'))
    expect((await stat(deep)).mode & 0o777).toBe(0o700)
    expect(await makeFolders(deep)).toBeUndefined()
    expect(await makeFolders(join(dir, 'a', 'x'))).toBe(join(dir, 'a', 'x'))
  })

  it('a file on the way is its error, as for mkdir -p', async () => {
    const file = join(dir, 'file')
    await writeFile(file, 'x')
    await expect(makeFolders(file)).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(makeFolders(join(file, 'below'))).rejects.toMatchObject({ code: 'ENOTDIR' })
  })

  it('under /proc it fails (ENOENT) where node:fs mkdir { recursive } never settles', async () => {
    await expect(makeFolders('/proc/haul-nope/x')).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
