/**
 * bench/mesh: engine processes that fetch from each other at once, through the load-test
 * harness (`haul loadtest`), against the same transfers in a fan-out in the same run.
 *
 *   npx node bench/mesh.ts                          # every phase below, ~5 minutes here
 *   HAUL_BENCH_PHASES=fanout,mesh2 npx node bench/mesh.ts
 *   HAUL_BENCH_SCALE=0.2 ...                        # size knob: a fifth of the transfers
 *   HAUL_BENCH_ROUNDS=3 ...                         # fan-out and 2-process mesh interleaved, medians compared
 *
 * Phases (1,000 x 1–4 MiB log-uniform, all in flight at once, unless said otherwise):
 *   fanout  2 processes, process 0 serves, 1 fetches: the reference
 *   mesh2   2 processes, each serves and fetches         target: 100 %, goodput >= 0.8x fanout,
 *                                                          each process peak RSS <= idle + 100 MB
 *   mesh4   4 processes, all twelve directed pairs         target: 100 %
 *   faults  mesh2 with --cut-every 500-3000 --stall-every 10000 --stall-for 2000   target: 100 %
 *   soak    10,000 x 64 KiB–1 MiB in a 4-process mesh with cuts every 500–3,000 ms, 1,000 in
 *           flight; target: 100 %, done within 10 minutes, no RSS growth between its first and
 *           last quarter beyond noise (both printed, per process)
 * Every download is hashed by its receiving process (checkDownloads) except in fanout and mesh2,
 * whose goodputs are compared and which carry no extra work.
 */
import { runLoadTest } from '../dist/loadtest/index.js'
import type { LoadTestOptions, LoadTestResult } from '../src/loadtest/options.ts'

const scale = Number(process.env.HAUL_BENCH_SCALE ?? 1)
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 1)
const phases = (process.env.HAUL_BENCH_PHASES ?? 'fanout,mesh2,mesh4,faults,soak').split(',')
const MiB = 1024 * 1024
const MB = 1e6

const thousand: LoadTestOptions = {
  transfers: Math.round(1000 * scale),
  concurrency: Math.round(1000 * scale),
  minBytes: 1 * MiB,
  maxBytes: 4 * MiB,
  files: 32,
  durationMs: 300_000,
  sampleMs: 500,
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]!
}

function report(name: string, r: LoadTestResult): void {
  const rss = r.processes
    .map(
      (p) =>
        `${p.index}: ${(p.peakRss / MB).toFixed(0)} (idle ${(p.idleRss / MB).toFixed(0)}, +${((p.peakRss - p.idleRss) / MB).toFixed(0)})`,
    )
    .join('  ')
  console.log(
    `${name}: ${r.ok} / ${r.planned} complete (${r.failed} failed, ${r.unfinished} unfinished) in ${r.seconds.toFixed(1)} s; goodput ${(r.goodput / MB).toFixed(1)} MB/s; retries ${r.retries}`,
  )
  console.log(`  peak RSS MB ${rss}`)
  if (r.failed > 0) console.log(`  errors ${JSON.stringify(r.errors)}`)
  if (r.faultsInjected !== null)
    console.log(
      `  faults: ${r.faultsInjected.cuts} cuts, ${r.faultsInjected.stalls} stalls; bytes re-sent ${((r.bytesResent ?? 0) / MB).toFixed(0)} MB of ${((r.wireBytes ?? 0) / MB).toFixed(0)} MB on the wire`,
    )
}

interface Quarter {
  mean: number
  peak: number
}

/** Each process's RSS (mean and highest sample) over the first and the last quarter of the run. */
function quarters(r: LoadTestResult): Array<{ first: Quarter; last: Quarter }> {
  const end = r.samples.at(-1)?.t ?? 0
  return r.processes.map((p) => {
    const over = (from: number, to: number): Quarter => {
      const xs = r.samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.rss[p.index] ?? 0)
      return { mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), peak: Math.max(0, ...xs) }
    }
    return { first: over(0, end / 4), last: over((3 * end) / 4, end) }
  })
}

console.log(`bench/mesh: engine processes on 127.0.0.1, tcp+noise+yamux, scale ${scale}`)
if (phases.includes('fanout') || phases.includes('mesh2')) {
  const fan: number[] = []
  const mesh: number[] = []
  for (let i = 0; i < rounds; i++) {
    if (phases.includes('fanout')) {
      const r = await runLoadTest({ ...thousand, processes: 2, topology: 'fan-out' })
      report(`fanout (round ${i + 1})`, r)
      fan.push(r.goodput)
    }
    if (phases.includes('mesh2')) {
      const r = await runLoadTest({ ...thousand, processes: 2, topology: 'mesh' })
      report(`mesh2 (round ${i + 1})`, r)
      const worst = Math.max(...r.processes.map((p) => p.peakRss - p.idleRss))
      console.log(`  largest peak above idle: ${(worst / MB).toFixed(0)} MB (target <= 100)`)
      mesh.push(r.goodput)
    }
  }
  if (fan.length > 0 && mesh.length > 0) {
    console.log(
      `mesh2 / fanout goodput: ${(median(mesh) / median(fan)).toFixed(2)}x (medians of ${rounds}: ${(median(mesh) / MB).toFixed(1)} / ${(median(fan) / MB).toFixed(1)} MB/s; target >= 0.8)`,
    )
  }
}
if (phases.includes('mesh4')) {
  report('mesh4', await runLoadTest({ ...thousand, processes: 4, topology: 'mesh', checkDownloads: true }))
}
if (phases.includes('faults')) {
  const r = await runLoadTest({
    ...thousand,
    processes: 2,
    topology: 'mesh',
    checkDownloads: true,
    faults: { cutEveryMs: [500, 3000], stallEveryMs: 10_000, stallMs: 2_000 },
  })
  report('faults', r)
}
if (phases.includes('soak')) {
  const n = Math.round(10_000 * scale)
  const r = await runLoadTest({
    processes: 4,
    topology: 'mesh',
    transfers: n,
    concurrency: Math.min(n, 1000),
    minBytes: 64 * 1024,
    maxBytes: 1 * MiB,
    files: 64,
    durationMs: 600_000,
    sampleMs: 500,
    checkDownloads: true,
    faults: { cutEveryMs: [500, 3000] },
  })
  report(`soak (${n} transfers)`, r)
  console.log(`  stopped by: ${r.stoppedBy} (target: completed within 600 s)`)
  // The first quarter includes the climb from idle; the peak is the fairer comparison.
  for (const [i, q] of quarters(r).entries()) {
    console.log(
      `  process ${i}: RSS first quarter mean ${(q.first.mean / MB).toFixed(0)} / peak ${(q.first.peak / MB).toFixed(0)} MB, last quarter mean ${(q.last.mean / MB).toFixed(0)} / peak ${(q.last.peak / MB).toFixed(0)} MB (peaks ${(q.last.peak / q.first.peak).toFixed(2)}x)`,
    )
  }
}
