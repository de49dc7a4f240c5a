/**
 * bench/concurrency: many concurrent transfers between two engine processes
 * (process 0 serves, process 1 fetches), through the load-test harness.
 *
 *   npx node bench/concurrency.ts                       # 1,000 x 1–16 MiB, then 10,000 x 64 KiB–1 MiB
 *   HAUL_BENCH_SCALE=0.1 npx node bench/concurrency.ts  # size knob: a tenth of the transfers
 *   HAUL_BENCH_DURATION_S=300 ...                       # per-phase deadline (default 240 s)
 *   HAUL_BENCH_REF_MIB=512 ...                          # reference transfer size (default 256 MiB)
 *   HAUL_BENCH_REF_ROUNDS=5 ...                         # reference transfers, median taken (default 3)
 *   HAUL_BENCH_EXEC_ARGV="--max-semi-space-size=1 --trace-gc" ...  # the engine processes' node flags (default: src/process-flags.ts)
 *   HAUL_BENCH_PHASES=1 ...                             # only phase 1 (1,000 transfers); "2" only the 10,000
 *   HAUL_BENCH_PHASES=3 ...                             # 3,000 x 16 KiB: the fixed cost of a transfer
 *
 * Reference, same run: one large transfer between the same two kinds of process (the median of
 * HAUL_BENCH_REF_ROUNDS such transfers, each in fresh processes).
 * Targets (issue 5): success 100 %; aggregate goodput ≥ 0.8x the reference;
 * peak RSS ≤ idle + 100 MB at 1,000 transfers; state what 10,000 takes.
 * Per-transfer overhead is (receiver peak − idle) / transfers in flight: an upper
 * bound on what one transfer costs (its share of buffers in flight included).
 * CPU per transfer is what both engine processes used (Linux: this process's
 * reaped children, /proc/self/stat) divided by the transfers, startup included.
 */
import { readFileSync } from 'node:fs'
import { runLoadTest } from '../dist/loadtest/index.js'
import type { LoadTestResult } from '../src/loadtest/options.ts'

const scale = Number(process.env.HAUL_BENCH_SCALE ?? 1)
const durationMs = Number(process.env.HAUL_BENCH_DURATION_S ?? 240) * 1000
const refMiB = Number(process.env.HAUL_BENCH_REF_MIB ?? 256)
const refRounds = Number(process.env.HAUL_BENCH_REF_ROUNDS ?? 3)
const MiB = 1024 * 1024
const MB = 1e6
const knob = (k: string) => (process.env[k] === undefined ? undefined : Number(process.env[k]))
// HAUL_BENCH_BUDGET_MIB / HAUL_BENCH_ACTIVE / HAUL_BENCH_RECYCLE_MIB / HAUL_BENCH_GC_ASSIST_MIB /
// HAUL_BENCH_IDLE_SESSIONS: the engines' memoryBudget, maxActiveTransfers, buffers.maxIdleBytes,
// gcAssistBytes and sessions.maxIdle.
const engine = {
  workers: 1,
  ...(knob('HAUL_BENCH_BUDGET_MIB') === undefined
    ? {}
    : { memoryBudget: knob('HAUL_BENCH_BUDGET_MIB')! * MiB }),
  ...(knob('HAUL_BENCH_ACTIVE') === undefined ? {} : { maxActiveTransfers: knob('HAUL_BENCH_ACTIVE')! }),
  ...(knob('HAUL_BENCH_READ_AHEAD') === undefined
    ? {}
    : { server: { readAhead: knob('HAUL_BENCH_READ_AHEAD')! } }),
  ...(knob('HAUL_BENCH_RECYCLE_MIB') === undefined
    ? {}
    : { buffers: { maxIdleBytes: knob('HAUL_BENCH_RECYCLE_MIB')! * MiB } }),
  ...(knob('HAUL_BENCH_GC_ASSIST_MIB') === undefined
    ? {}
    : { gcAssistBytes: knob('HAUL_BENCH_GC_ASSIST_MIB')! * MiB }),
  ...(knob('HAUL_BENCH_IDLE_SESSIONS') === undefined
    ? {}
    : { sessions: { maxIdle: knob('HAUL_BENCH_IDLE_SESSIONS')! } }),
}

const execArgv = process.env.HAUL_BENCH_EXEC_ARGV?.split(' ').filter((a) => a !== '')
const common = {
  processes: 2,
  topology: 'fan-out' as const,
  engine,
  durationMs,
  sampleMs: 500,
  ...(execArgv === undefined ? {} : { execArgv }),
}

/** CPU seconds of this process's reaped children (the engine processes of finished phases). */
function childrenCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[13]) + Number(fields[14])) / 100
  } catch {
    return Number.NaN
  }
}

function line(r: LoadTestResult): string {
  const [s, g] = r.processes
  return `peak RSS sender ${(s!.peakRss / MB).toFixed(0)} MB (idle ${(s!.idleRss / MB).toFixed(0)}), receiver ${(g!.peakRss / MB).toFixed(0)} MB (idle ${(g!.idleRss / MB).toFixed(0)})`
}

console.log(`bench/concurrency: two processes, 127.0.0.1, tcp+noise+yamux, scale ${scale}`)
// The reference is the median of a few single transfers: one alone varied 93–159 MB/s between runs.
const refs: LoadTestResult[] = []
for (let i = 0; i < refRounds; i++) {
  refs.push(
    await runLoadTest({
      ...common,
      transfers: 1,
      concurrency: 1,
      files: 1,
      minBytes: refMiB * MiB,
      maxBytes: refMiB * MiB,
    }),
  )
}
const ref = [...refs].sort((a, b) => a.goodput - b.goodput)[Math.floor((refs.length - 1) / 2)]!
console.log(
  `reference: one ${refMiB} MiB transfer, median of ${refs.length}: ${(ref.goodput / MB).toFixed(1)} MB/s (${refs.map((r) => (r.goodput / MB).toFixed(1)).join(' / ')}); ${line(ref)}`,
)

const phases = (process.env.HAUL_BENCH_PHASES ?? '1,2').split(',').map(Number)
for (const phase of [
  { id: 1, n: Math.round(1000 * scale), min: 1 * MiB, max: 16 * MiB, files: 32 },
  { id: 2, n: Math.round(10_000 * scale), min: 64 * 1024, max: 1 * MiB, files: 64 },
  { id: 3, n: Math.round(3_000 * scale), min: 16 * 1024, max: 16 * 1024, files: 64 },
].filter((p) => phases.includes(p.id))) {
  const last = { t: 0 }
  const cpuBefore = childrenCpuSeconds()
  const r = await runLoadTest({
    ...common,
    transfers: phase.n,
    concurrency: phase.n,
    files: phase.files,
    minBytes: phase.min,
    maxBytes: phase.max,
    distribution: 'uniform',
    onSample: (s) => {
      if (s.t - last.t < 10) return
      last.t = s.t
      console.log(
        `  ${s.t.toFixed(0)} s: ${s.done} done, ${s.failed} failed, ${s.active} active, ${(s.bytesDone / MB).toFixed(0)} MB, rss ${s.rss.map((x) => (x / MB).toFixed(0)).join('/')} MB`,
      )
    },
  })
  const recv = r.processes[1]!
  const cpu = childrenCpuSeconds() - cpuBefore
  console.log(
    `${phase.n} x ${phase.min / 1024} KiB–${phase.max / 1024} KiB: success ${(r.successRate * 100).toFixed(1)} % (${r.ok} ok, ${r.failed} failed, ${r.unfinished} unfinished, ${r.stoppedBy} after ${r.seconds.toFixed(0)} s)`,
  )
  console.log(`  errors: ${JSON.stringify(r.errors)}`)
  console.log(
    `  aggregate goodput ${(r.goodput / MB).toFixed(1)} MB/s = ${(r.goodput / ref.goodput).toFixed(2)}x the reference; completion p50 ${r.completion.p50.toFixed(1)} s p95 ${r.completion.p95.toFixed(1)} s p99 ${r.completion.p99.toFixed(1)} s`,
  )
  console.log(`  ${line(r)}`)
  console.log(
    `  ${(r.ok / r.seconds).toFixed(0)} transfers/s; CPU ${((cpu * 1000) / phase.n).toFixed(2)} ms per transfer (both engine processes, startup included)`,
  )
  console.log(
    `  per-transfer overhead ≤ ${((recv.peakRss - recv.idleRss) / phase.n / 1024).toFixed(1)} KiB (receiver (peak − idle) / ${phase.n})`,
  )
}
