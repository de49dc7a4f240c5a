import { mkdir, readdir, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine } from '../../src/index.ts'
import { tempDir, writeFile } from '../support/files.ts'

describe('descriptors live in the data folder, keyed by the file fingerprint', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('nothing is written beside the source; an unchanged file is published again without reading it; a changed one is indexed again', async () => {
    const src = join(dir, 'src')
    await mkdir(src)
    const file = join(src, 'movie.bin')
    await writeFile(file, 3 * 1024 * 1024 + 5, 'random')
    const folder = join(dir, 'folder')
    await mkdir(join(folder, 'sub'), { recursive: true })
    await writeFile(join(folder, 'sub', 'a.bin'), 70_000, 'random')
    await writeFile(join(folder, 'b.txt'), 1000, 'text')
    // Past the racy window (2 s): only then does a fingerprint vouch for the bytes later.
    await new Promise((r) => setTimeout(r, 2100))
    const data = join(dir, 'data')
    const first = await createEngine({ dataDir: data, workers: 1 })
    const a = await first.publish(file)
    const fa = await first.publishCollection(folder).finally(() => first.stop())
    expect(fa.index.reused).toBe(false)
    expect(a.index.reused).toBe(false)
    expect(await readdir(src)).toEqual(['movie.bin'])
    // The file's descriptor and the folder's pack descriptor.
    expect((await readdir(join(data, 'descriptors'))).filter((n) => n.endsWith('.haul'))).toHaveLength(2)

    const second = await createEngine({ dataDir: data, workers: 1 })
    try {
      const b = await second.publish(file)
      expect(b.index.reused).toBe(true)
      expect(Buffer.from(b.index.cid).equals(Buffer.from(a.index.cid))).toBe(true)
      const fb = await second.publishCollection(folder)
      expect(fb.index.reused).toBe(true)
      expect(fb.ticket).not.toBe('')
      expect(Buffer.from(fb.index.cid).equals(Buffer.from(fa.index.cid))).toBe(true)
      expect((await readdir(folder)).sort()).toEqual(['b.txt', 'sub'])
      // A touched file has a new fingerprint: indexed again (and racy now, so not kept for reuse).
      const now = new Date()
      await utimes(file, now, now)
      const c = await second.publish(file)
      expect(c.index.reused).toBe(false)
      expect(await readdir(src)).toEqual(['movie.bin'])
    } finally {
      await second.stop()
    }
  })
})
