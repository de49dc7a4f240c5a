import { open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { syncFiles } from '../../src/storage/sync-fs.ts'
import { tempDir } from '../support/files.ts'

describe('syncFiles', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let files: string[]
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    files = []
    for (let i = 0; i < 40; i++) {
      const f = join(dir, `f${i}`)
      await writeFile(f, `${i}`)
      files.push(f)
    }
  })
  afterAll(() => cleanup())

  it('many files: one syncfs of their file system, given its real path', async () => {
    expect(await syncFiles(dir, files)).toBe('syncfs')
  })

  it("a path only this process can resolve (/proc/self/fd/…): `sync` cannot use it, so each file is fsync'd", async () => {
    const fh = await open(dir, 'r')
    try {
      expect(await syncFiles(`/proc/self/fd/${fh.fd}`, files)).toBe('fsync')
    } finally {
      await fh.close()
    }
  })

  it('few files: an fsync each', async () => {
    expect(await syncFiles(dir, files.slice(0, 3))).toBe('fsync')
    expect(await syncFiles(dir, [])).toBe('none')
  })
})
