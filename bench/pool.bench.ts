/**
 * SHA-256 of N MiB in 1 MiB buffers: through WorkerPool (buffers moved there and back, 1 and 2
 * threads) against single-threaded node:crypto in the same run, and against crypto.subtle.digest
 * with several calls in flight (it runs on libuv's threadpool, UV_THREADPOOL_SIZE, default 4) as an
 * alternative to the pool for the indexer.
 *
 *   npx node bench/pool.bench.ts            # 512 MiB per contender
 *   HAUL_BENCH_MIB=2048 npx node bench/pool.bench.ts
 *
 * Contenders run in interleaved rounds (HAUL_BENCH_ROUNDS, default 4) so load from other processes
 * on this shared machine spreads over all of them; MB/s is over the sum of each one's rounds.
 * "MB per CPU-second" divides by the process's CPU time instead (all threads): the cost of each
 * route, which holds up better than wall-clock speed when other processes take the cores.
 */
import { createHash, webcrypto } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { MiB } from '../src/types.ts'
import { WorkerPool } from '../src/workers/pool.ts'
import { randomData } from '../test/workers/data.ts'

const totalMiB = Number(process.env.HAUL_BENCH_MIB ?? process.argv[2] ?? 512)
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 4)
const perRound = Math.max(1, Math.round(totalMiB / rounds))
/** Buffers in flight per contender: enough to keep every thread busy while results travel back. */
const WINDOW = 8

/** The buffers in flight, made once (outside the timing) and recycled: each loop owns one. */
const recycled = Array.from({ length: WINDOW }, (_, i) => randomData(MiB, 100 + i))

/** Hashes `count` 1 MiB buffers with `window` concurrent loops, each recycling its own buffer. */
async function drive(count: number, window: number, step: (buf: Uint8Array) => Promise<Uint8Array>) {
  let next = 0
  const loops = Array.from({ length: window }, async (_, i) => {
    let buf = recycled[i]!
    while (next < count) {
      next++
      buf = await step(buf)
    }
    recycled[i] = buf
  })
  await Promise.all(loops)
}

const sample = randomData(MiB, 1)
const expected = createHash('sha256').update(sample).digest()
const pool1 = new WorkerPool({ threads: 1 })
const pool2 = new WorkerPool({ threads: 2 })
// Check correctness once, and let the threads start and load worker.ts before timing.
for (const pool of [pool1, pool2]) {
  const { hash } = await pool.hash(sample.slice())
  if (Buffer.compare(hash, expected) !== 0) throw new Error('pool hash mismatch')
  await drive(16, WINDOW, async (b) => (await pool.hash(b)).buf)
}

const contenders: [string, (count: number) => Promise<void>][] = [
  [
    'node:crypto, main thread (reference)',
    async (count) => {
      // The same buffers the others hash, so every contender sees the same cache footprint.
      for (let i = 0; i < count; i++)
        createHash('sha256')
          .update(recycled[i % WINDOW]!)
          .digest()
    },
  ],
  ['WorkerPool, 1 thread', (count) => drive(count, WINDOW, async (b) => (await pool1.hash(b)).buf)],
  ['WorkerPool, 2 threads', (count) => drive(count, WINDOW, async (b) => (await pool2.hash(b)).buf)],
  ...[1, 2, 4, 8].map((n): [string, (count: number) => Promise<void>] => [
    `crypto.subtle.digest, ${n} in flight`,
    (count) =>
      drive(count, n, async (b) => {
        await webcrypto.subtle.digest('SHA-256', b)
        return b
      }),
  ]),
]

const ms = new Map<string, number>(contenders.map(([name]) => [name, 0]))
/** CPU time of the whole process (all threads, libuv pool included): steadier than wall time under load. */
const cpuMs = new Map<string, number>(contenders.map(([name]) => [name, 0]))
for (let r = 0; r < rounds; r++) {
  for (const [name, run] of contenders) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await run(perRound)
    ms.set(name, ms.get(name)! + performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpuMs.set(name, cpuMs.get(name)! + (c.user + c.system) / 1000)
  }
}
await Promise.all([pool1.destroy(), pool2.destroy()])

const bytes = perRound * rounds * MiB
const ref = bytes / ms.get(contenders[0]![0])!
console.log(
  `SHA-256 of ${perRound * rounds} MiB in 1 MiB buffers per contender, ${rounds} interleaved rounds; ` +
    `${availableParallelism()} cores, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, ${process.version}`,
)
console.table(
  contenders.map(([name]) => {
    const rate = bytes / ms.get(name)!
    return {
      contender: name,
      'MB/s': Math.round(rate / 1000),
      'x main-thread node:crypto': (rate / ref).toFixed(2),
      'MB per CPU-second': Math.round(bytes / cpuMs.get(name)! / 1000),
    }
  }),
)
