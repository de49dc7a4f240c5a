/**
 * bench/fanout: one seeder process serves one file to N receiver processes at once, on loopback.
 * First one receiver alone (the reference), then N at once.
 *
 *   npx node bench/fanout.ts                               # 64 MiB random file, N = 16
 *   HAUL_FANOUT_N=50 HAUL_FANOUT_MIB=256 npx node bench/fanout.ts
 *   HAUL_FANOUT_CACHE_MIB=0 npx node bench/fanout.ts       # the seeder's serveCacheBytes (default: the engine's, half its budget)
 *   HAUL_FANOUT_BUDGET_MIB=64 npx node bench/fanout.ts     # the seeder's memoryBudget (default: the engine's)
 *   HAUL_FANOUT_OFF=1 npx node bench/fanout.ts             # also N receivers with the cache off, in the same run
 *
 * Prints, from the seeder's stats, disk reads per chunk served in each phase (target ≤ 1.2 with N
 * receivers) and the reads that waited for the pack, the aggregate goodput of the N (N × file / time from the start to the last one
 * done) against the one receiver's, and the seeder's peak RSS. Every process runs dist/ (`npm run
 * build`); receivers verify every chunk and delete their copy once done.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EngineStats } from '../dist/engine/stats.js'
import { forkPeer, nextMessage } from './lib/ipc.ts'
import { ensureRandomFile, MiB } from './lib/proc.ts'

interface Done {
  seconds: number
  bytes: number
  endedAt: number
}
interface SeederStats {
  stats: EngineStats
  peakRss: number
}

const receivers = Math.min(50, Math.max(1, Number(process.env.HAUL_FANOUT_N ?? 16)))
const size = Math.min(256, Number(process.env.HAUL_FANOUT_MIB ?? 64)) * MiB
const cacheMib = process.env.HAUL_FANOUT_CACHE_MIB
const budgetMib = process.env.HAUL_FANOUT_BUDGET_MIB
const withOff = process.env.HAUL_FANOUT_OFF === '1'
const peer = new URL('./fanout-peer.ts', import.meta.url).pathname
const file = join(tmpdir(), `haul-fanout-${size}.bin`)
/** The engine's default chunking: fixed 1 MiB. */
const fileChunks = Math.ceil(size / MiB)

function exited(c: ChildProcess): Promise<unknown> {
  return new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null)))
}

/** `n` receivers fetch at once; the aggregate goodput and the seeder's chunk counters over the phase. */
async function phase(seeder: ChildProcess, ticket: string, n: number, dir: string) {
  const procs = Array.from({ length: n }, (_, i) => forkPeer(peer, ['get', join(dir, `r${n}-${i}.out`)]))
  try {
    await Promise.all(procs.map((p) => nextMessage(p, 'ready')))
    seeder.send({ type: 'stats' })
    const before = (await nextMessage<SeederStats>(seeder, 'stats')).stats.serving.chunks
    const done = procs.map((p) => nextMessage<Done>(p, 'done'))
    const t0 = performance.timeOrigin + performance.now()
    for (const p of procs) p.send({ type: 'go', ticket })
    const results = await Promise.all(done)
    const seconds = (Math.max(...results.map((r) => r.endedAt)) - t0) / 1000
    seeder.send({ type: 'stats' })
    const after = await nextMessage<SeederStats>(seeder, 'stats')
    const c = after.stats.serving.chunks
    for (const r of results)
      if (r.bytes !== size) throw new Error(`a receiver got ${r.bytes} bytes of ${size}`)
    return {
      seconds,
      goodput: (n * size) / seconds,
      reads: c.reads - before.reads,
      served: c.served - before.served,
      hits: c.cacheHits - before.cacheHits,
      paced: c.pacedReads - before.pacedReads,
      cacheLimit: c.cacheLimitBytes,
      peakRss: after.peakRss,
      budgetPeak: after.stats.memory.peakBytes,
      budgetLimit: after.stats.memory.limitBytes,
    }
  } finally {
    await Promise.all(procs.map(exited))
  }
}

await ensureRandomFile(file, size)
const dir = await mkdtemp(join(tmpdir(), 'haul-fanout-bench-'))
const cacheArg = cacheMib === undefined ? 'default' : String(Number(cacheMib) * MiB)
const budgetArg = budgetMib === undefined ? 'default' : String(Number(budgetMib) * MiB)

/** A phase against a fresh seeder, so that neither starts with the other's chunks cached. */
async function withSeeder(n: number, name: string, cache = cacheArg) {
  const seeder = forkPeer(peer, ['seed', file, join(dir, name), cache, budgetArg])
  try {
    const { ticket } = await nextMessage<{ ticket: string }>(seeder, 'ready')
    return await phase(seeder, ticket, n, dir)
  } finally {
    seeder.send({ type: 'exit' })
    await exited(seeder)
  }
}

try {
  const report = (name: string, r: Awaited<ReturnType<typeof phase>>) =>
    console.log(
      `${name}: ${r.seconds.toFixed(2)} s, aggregate goodput ${(r.goodput / MiB).toFixed(1)} MiB/s; seeder read ${r.reads} chunks for ${r.served} served (${r.hits} cache hits, ${r.paced} reads waited for the pack): ${(r.reads / fileChunks).toFixed(2)} reads per chunk of the file, ${(r.reads / r.served).toFixed(3)} per chunk frame served; seeder peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB, budget peak ${(r.budgetPeak / MiB).toFixed(1)} of ${(r.budgetLimit / MiB).toFixed(0)} MiB`,
    )
  // Each phase as it ends, so that a run cut short still says what it measured.
  const one = await withSeeder(1, 'seeder-1')
  console.log(
    `bench/fanout: ${size / MiB} MiB random file, one seeder process, serveCacheBytes ${(one.cacheLimit / MiB).toFixed(0)} MiB, budget ${(one.budgetLimit / MiB).toFixed(0)} MiB`,
  )
  report('1 receiver', one)
  const many = await withSeeder(receivers, 'seeder-n')
  report(`${receivers} receivers at once`, many)
  const off = withOff ? await withSeeder(receivers, 'seeder-off', '0') : undefined
  if (off !== undefined) report(`${receivers} receivers at once, cache off`, off)
  console.log(
    `aggregate goodput / one receiver's = ${(many.goodput / MiB).toFixed(1)} / ${(one.goodput / MiB).toFixed(1)} = ${(many.goodput / one.goodput).toFixed(2)}; disk reads per chunk of the file with ${receivers}: ${(many.reads / fileChunks).toFixed(2)} (target <= 1.2)`,
  )
  if (off !== undefined)
    console.log(
      `aggregate goodput with the cache / without = ${(many.goodput / MiB).toFixed(1)} / ${(off.goodput / MiB).toFixed(1)} = ${(many.goodput / off.goodput).toFixed(2)}; seeder peak RSS ${(many.peakRss / MiB).toFixed(0)} / ${(off.peakRss / MiB).toFixed(0)} MiB`,
    )
} finally {
  await rm(dir, { recursive: true, force: true })
}
