/**
 * bench/queued-fetch: what a fetch waiting for admission costs in heap. Two engines in this
 * process; the receiver admits one transfer at a time, and N fetches of 16 published files are
 * queued behind it. Prints the heap growth per queued fetch (after full GCs), and, as the
 * reference from the same run, the heap the two idle engines took.
 *
 *   npx node --expose-gc bench/queued-fetch.ts          # 10,000 queued
 *   HAUL_QUEUED_N=1000 npx node --expose-gc bench/queued-fetch.ts
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine } from '../src/index.ts'

const n = Number(process.env.HAUL_QUEUED_N ?? 10_000)
if (!(Number.isSafeInteger(n) && n > 0 && n <= 1_000_000)) throw new Error('bad HAUL_QUEUED_N')
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')
const heap = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const dir = await mkdtemp(join(tmpdir(), 'haul-queued-'))
await mkdir(join(dir, 'out'))
const before = heap()
const sender = await createEngine({ workers: 1 })
const receiver = await createEngine({ workers: 1, maxActiveTransfers: 1 })
const tickets: string[] = []
for (let i = 0; i < 16; i++) {
  const file = join(dir, `f${i}`)
  await writeFile(file, Buffer.alloc(16 * 1024 + i, i))
  tickets.push((await sender.publish(file)).ticket)
}
const idle = heap()
const handles = Array.from({ length: n }, (_, i) =>
  receiver.fetch(tickets[i % 16]!, join(dir, 'out', `o${i}`)),
)
const queued = heap()
console.log(
  `two idle engines: ${((idle - before) / 1e6).toFixed(1)} MB of heap; ${n} queued fetches: ${((queued - idle) / 1e6).toFixed(1)} MB, ${((queued - idle) / n).toFixed(0)} bytes each`,
)
for (const h of handles) h.cancel()
await Promise.allSettled(handles.map((h) => h.result))
await receiver.stop()
await sender.stop()
await rm(dir, { recursive: true, force: true })
