import { appendFileSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DescriptorWriter } from '../../src/descriptor/index.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { KiB, MiB } from '../../src/types.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { tempDir } from '../support/files.ts'

/** What is at a descriptor's path stays there when indexing fails or must not replace it. */
describe('a descriptor takes its place only once whole and wanted', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let pool: WorkerPool
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    pool = new WorkerPool({ threads: 1 })
  })
  afterAll(async () => {
    await pool.destroy()
    await cleanup()
  })

  const temporaries = async (name: string) => (await readdir(dir)).filter((n) => n.startsWith(`${name}.`))

  it('replace: false: a file that appeared at the path while the table was written is kept (DESTINATION_EXISTS)', async () => {
    const path = join(dir, 'late.haul')
    const w = await DescriptorWriter.create(path, {
      chunking: { kind: 'fixed', size: 64 * KiB },
      replace: false,
    })
    await w.append({ offset: 0, length: 10, hash: new Uint8Array(32) })
    await writeFile(path, 'precious\n')
    await expect(w.finish(10)).rejects.toMatchObject({ code: 'DESTINATION_EXISTS' })
    expect(await readFile(path, 'utf8')).toBe('precious\n')
    expect(await temporaries('late.haul')).toEqual([])
  })

  it('a source changed while it was indexed is CONTENT_CHANGED and leaves the file at the descriptor path as it was', async () => {
    const src = join(dir, 'src.bin')
    await writeFile(src, Buffer.alloc(4 * 64 * KiB, 7))
    const path = join(dir, 'kept.haul')
    await writeFile(path, 'kept\n')
    let changed = false
    await expect(
      indexFile(src, {
        chunking: { kind: 'fixed', size: 64 * KiB },
        pool,
        budget: new MemoryBudget({ limit: 4 * MiB }),
        descriptorPath: path,
        onProgress: () => {
          if (changed) return
          changed = true
          appendFileSync(src, 'more')
        },
      }),
    ).rejects.toMatchObject({ code: 'CONTENT_CHANGED' })
    expect(await readFile(path, 'utf8')).toBe('kept\n')
    expect(await temporaries('kept.haul')).toEqual([])
  })
})
