import { createHash, randomBytes } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DescriptorReader, DescriptorWriter, ROW_SIZE } from '../../src/descriptor/index.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { DIRECT_READ_MIN_SIZE } from '../../src/storage/direct-reads.ts'
import { type ChunkingParams, KiB, MiB } from '../../src/types.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { tempDir } from '../support/files.ts'

// A sparse file: holes, a run of random data, one non-zero byte at the end of an otherwise
// zero chunk, and a short zero tail. Its chunks' digests partly come from the zero shortcut,
// and it is large and sparse enough to be read through O_DIRECT (src/storage/direct-reads.ts).
const SIZE = DIRECT_READ_MIN_SIZE + 1234
const CHUNKINGS: ChunkingParams[] = [
  { kind: 'fixed', size: 64 * KiB },
  { kind: 'cdc', minSize: 64 * KiB, avgSize: 128 * KiB, maxSize: 256 * KiB },
]

describe('indexing a sparse file', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let pool: WorkerPool
  let src: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    pool = new WorkerPool({ threads: 2 })
    src = join(dir, 'sparse.img')
    const fh = await open(src, 'w')
    await fh.truncate(SIZE)
    await fh.write(randomBytes(100 * KiB), 0, 100 * KiB, 1 * MiB + 17)
    await fh.write(Uint8Array.of(1), 0, 1, 21 * 64 * KiB - 1)
    await fh.write(randomBytes(1000), 0, 1000, 40 * MiB + 123)
    await fh.close()
  })
  afterAll(async () => {
    await pool.destroy()
    await cleanup()
  })

  for (const chunking of CHUNKINGS) {
    it(`${chunking.kind}: the descriptor equals, byte for byte, one written with plain SHA-256 digests`, async () => {
      const fast = join(dir, `${chunking.kind}.haul`)
      const r = await indexFile(src, {
        chunking,
        pool,
        // CDC reads 8 MiB blocks.
        budget: new MemoryBudget({ limit: 16 * MiB }),
        descriptorPath: fast,
      })
      // The same rows, every digest recomputed by node:crypto from the file's bytes.
      const bytes = await readFile(src)
      const reader = await DescriptorReader.open(fast)
      const slow = join(dir, `${chunking.kind}.plain.haul`)
      const w = await DescriptorWriter.create(slow, { chunking })
      let zeroChunks = 0
      for (let p = 0; p < reader.pageCount; p++) {
        const { entries } = await reader.readPage(p)
        const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength)
        for (let at = 0; at < entries.length; at += ROW_SIZE) {
          const offset = Number(view.getBigUint64(at))
          const length = view.getUint32(at + 8)
          const chunk = bytes.subarray(offset, offset + length)
          if (chunk.equals(Buffer.alloc(length))) zeroChunks++
          const hash = new Uint8Array(createHash('sha256').update(chunk).digest())
          await w.append({ offset, length, hash })
        }
      }
      await reader.close()
      const plain = await w.finish(SIZE)
      expect(zeroChunks).toBeGreaterThan(5)
      expect(Buffer.from(r.cid).equals(Buffer.from(plain.cid))).toBe(true)
      expect((await readFile(fast)).equals(await readFile(slow))).toBe(true)
    })
  }
})
