import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { DescriptorReader, DescriptorWriter, ROW_SIZE } from '../../src/descriptor/index.ts'
import { FIXED_64K, withTmpDir } from './helpers.ts'

// A full collection before each sample makes heapUsed mean "live" rather than "not yet collected".
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const MB = 1000 * 1000
const CHUNK = 64 * 1024

/** Peak heapUsed growth over `base` while `fn` runs, sampled (after a gc) every 100 ms and at the end. */
async function peakGrowth(fn: (sample: () => void) => Promise<void>): Promise<number> {
  gc()
  const base = process.memoryUsage().heapUsed
  let peak = 0
  const sample = () => {
    gc()
    peak = Math.max(peak, process.memoryUsage().heapUsed - base)
  }
  const timer = setInterval(sample, 100)
  try {
    await fn(sample)
  } finally {
    clearInterval(timer)
  }
  sample()
  return peak
}

async function writeRows(path: string, rows: number, sample: () => void = () => {}) {
  const hash = new Uint8Array(32).fill(7)
  const w = await DescriptorWriter.create(path, { chunking: FIXED_64K })
  for (let i = 0; i < rows; i++) {
    await w.append({ offset: i * CHUNK, length: CHUNK, hash })
    if (i % 200_000 === 0) sample()
  }
  return w.finish(rows * CHUNK)
}

describe('bounded memory', () => {
  it('DescriptorWriter: 2,000,000 rows (88 MB of table) with < 30 MB heap growth', async () => {
    await withTmpDir(async (dir) => {
      const rows = 2_000_000
      let leafCount = 0
      const peak = await peakGrowth(async (sample) => {
        leafCount = (await writeRows(join(dir, 'big.haul'), rows, sample)).header.leafCount
      })
      expect(leafCount).toBe(rows)
      expect(peak).toBeLessThan(30 * MB)
    })
  })

  it('DescriptorReader: verifying 300,000 rows keeps only the page-root tree', async () => {
    await withTmpDir(async (dir) => {
      // 13 MB of rows on disk; decoded into LeafEntry objects they would be ~50 MB.
      const rows = 300_000
      const path = join(dir, 'mid.haul')
      await writeRows(path, rows)
      let reader: DescriptorReader | undefined
      const peak = await peakGrowth(async () => {
        reader = await DescriptorReader.open(path)
      })
      expect(reader!.pageCount).toBe(Math.ceil(rows / 1024))
      // The tree above the page roots: about 2 * pages * 32 bytes.
      expect(reader!.memoryBytes).toBeLessThanOrEqual((2 * reader!.pageCount + 32) * 32)
      const { entries } = await reader!.readPage(reader!.pageCount - 1)
      expect(entries.length).toBe((rows % 1024 || 1024) * ROW_SIZE)
      await reader!.close()
      expect(peak).toBeLessThan(8 * MB)
    })
  })
})
