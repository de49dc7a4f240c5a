/** One indexing run in its own process, so peak RSS is this run's alone. Prints one JSON line. */
import { createHash } from 'node:crypto'
import { open, rm } from 'node:fs/promises'
import { parseChunking } from '../src/chunking/params.ts'
import { indexFile } from '../src/engine/indexer.ts'
import { MemoryBudget } from '../src/engine/memory-budget.ts'
import { WorkerPool } from '../src/workers/pool.ts'
import { peakRss } from './lib/proc.ts'

const [mode, file] = process.argv.slice(2) as [string, string]
const idleRss = process.memoryUsage().rss

if (mode === 'sha256') {
  // Reference: plain single-threaded node:crypto over the same file, read in 4 MiB blocks.
  const t0 = performance.now()
  const fh = await open(file, 'r')
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024)
  const h = createHash('sha256')
  let total = 0
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, total)
    if (bytesRead === 0) break
    h.update(buf.subarray(0, bytesRead))
    total += bytesRead
  }
  await fh.close()
  h.digest()
  const seconds = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ mode, bytes: total, seconds, peakRss: peakRss(), idleRss }))
} else {
  const pool = new WorkerPool()
  await pool.hash(new Uint8Array(16)) // warm the threads: startup is not indexing
  const budget = new MemoryBudget({ limit: 64 * 1024 * 1024 })
  const descriptorPath = `${file}.${mode.replace(/\W/g, '_')}.haul`
  const r = await indexFile(file, { chunking: parseChunking(mode), pool, budget, descriptorPath })
  await pool.destroy()
  await rm(descriptorPath, { force: true })
  console.log(
    JSON.stringify({
      mode,
      bytes: r.bytes,
      seconds: r.seconds,
      chunks: r.chunks,
      peakRss: peakRss(),
      idleRss,
      budgetPeak: budget.peak,
    }),
  )
}
