/**
 * What one transfer machine's life costs (spawn, its three steps, done, reap) while others are
 * live, with the machines spread over the engine's shards against all under one parent (XState's
 * plain layout), measured in the same run. XState copies a parent's `children` record on every
 * spawn and stop, so under one parent the cost grows with the live count; spread over shards it
 * stays near flat.
 *
 *   npx node bench/transfer-system.bench.ts                 # 64 and 1,024 live
 *   SYSTEM_BENCH_LIVE=64,4096 SYSTEM_BENCH_TIME_MS=1000 npx node bench/transfer-system.bench.ts
 *   npx node --expose-gc bench/transfer-system.bench.ts     # and the heap after 20,000-transfer rounds
 *
 * With --expose-gc it then runs rounds of 20,000 transfers (64 at a time) through one system and
 * prints the heap after a full GC: flat when nothing is kept per finished transfer.
 */

import { Bench } from 'tinybench'
import type { TransferJob } from '../src/transfer/transfer-machine.ts'
import { outputOf, SHARDS, TransferSystem } from '../src/transfer/transfer-system.ts'

const lives = (process.env.SYSTEM_BENCH_LIVE ?? '64,1024').split(',').map(Number)
const timeMs = Number(process.env.SYSTEM_BENCH_TIME_MS ?? 500)
if (!lives.every((n) => Number.isSafeInteger(n) && n >= 0 && n <= 100_000))
  throw new Error('bad SYSTEM_BENCH_LIVE')
if (!(timeMs > 0)) throw new Error('bad SYSTEM_BENCH_TIME_MS')

const job = (fetched: Promise<void>): TransferJob => ({
  resolve: async () => {},
  fetchChunks: () => fetched,
  finalize: async () => {},
  retry: { maxAttempts: 1, maxAttemptsFirstContact: 1, baseDelayMs: 1, maxDelayMs: 1, maxStallMs: 1 },
  progressMark: () => 0,
})
const never = new Promise<void>(() => {})
const now = Promise.resolve()

const bench = new Bench({ time: timeMs, warmup: true })
const systems: TransferSystem[] = []
for (const live of lives) {
  for (const [name, shards] of [
    ['one parent', 1],
    [`${SHARDS} shards`, SHARDS],
  ] as const) {
    const system = new TransferSystem(shards)
    systems.push(system)
    for (let i = 0; i < live; i++) system.spawn(`live-${i}`, job(never))
    let n = 0
    bench.add(`${live} live, ${name}`, async () => {
      const id = `t-${n++}`
      await outputOf(system.spawn(id, job(now)))
      system.reap(id)
    })
  }
}
await bench.run()
for (const s of systems) s.stop()

const usPer = (name: string): number => {
  const r = bench.getTask(name)?.result as { latency?: { mean: number } } | undefined
  if (r?.latency === undefined) throw new Error(`bench: no result for ${name}`)
  return r.latency.mean * 1000
}
console.log('one transfer machine, spawn to reap (µs, mean):')
for (const live of lives) {
  const one = usPer(`${live} live, one parent`)
  const sharded = usPer(`${live} live, ${SHARDS} shards`)
  console.log(
    `  ${String(live).padStart(6)} live: one parent ${one.toFixed(1)}, ${SHARDS} shards ${sharded.toFixed(1)} (${(one / sharded).toFixed(2)}x faster)`,
  )
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc !== undefined) {
  const system = new TransferSystem()
  let n = 0
  const heap: string[] = []
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 20_000; i += 64) {
      const batch = Array.from({ length: 64 }, () => {
        const id = `h-${n++}`
        return [id, system.spawn(id, job(now))] as const
      })
      await Promise.all(batch.map(([, a]) => outputOf(a)))
      for (const [id] of batch) system.reap(id)
    }
    gc()
    heap.push((process.memoryUsage().heapUsed / 1e6).toFixed(1))
  }
  system.stop()
  console.log(`heap after each 20,000 transfers (MB, after a full GC): ${heap.join(', ')}`)
}
