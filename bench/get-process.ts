/**
 * bench/get-process: `haul get` as a user runs it on one machine: a whole process from spawn to
 * exit (start-up, connection, descriptor, transfer, fsync and rename included), fetching from a
 * `haul send` in another process over 127.0.0.1. In the same run, rounds alternating with it, the
 * bare libp2p noise stream of the same stack (bench/lib/raw-stream.ts: stream open to last byte,
 * from memory to nothing: no start-up, no disk, no chunks, no hashes), the reference the issue
 * names. Prints goodput and the ratio per round, haul's own transfer time (its `done` event), and
 * each haul process's peak RSS and CPU seconds per GiB (sampled from /proc every 20 ms).
 *
 *   npx node bench/get-process.ts                         # 1 GiB random, 2 rounds
 *   HAUL_BENCH_GIB=4 HAUL_BENCH_ROUNDS=3 npx node bench/get-process.ts
 *   HAUL_BENCH_DATA=logs|text ...                         # compressible (bench/lib/proc.ts)
 *   HAUL_BENCH_GET_ARGS="--no-compression" ...          # more arguments for each `haul get`
 *
 * Targets (issue 23): goodput ≥ 1.0x the bare stream at 4 GiB, ≥ 0.9x at 1 GiB. Runs the built
 * CLI (bin/haul.js): `npm run build` first.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  benchDataFromEnv,
  benchFilePath,
  cpuSecondsOf,
  dataLabel,
  ensureDataFile,
  firstJson,
  GiB,
  MB,
  runMeasured,
  sizeFromEnv,
} from './lib/proc.ts'
import { measureRawStream } from './lib/raw-stream.ts'

const size = sizeFromEnv(1)
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 2))
const data = benchDataFromEnv()
const file = process.env.HAUL_BENCH_FILE ?? benchFilePath(tmpdir(), data, size)
const haul = new URL('../bin/haul.js', import.meta.url).pathname
const getArgs = process.env.HAUL_BENCH_GET_ARGS?.split(' ').filter(Boolean) ?? []
interface HaulRun {
  seconds: number
  /** haul's own figure: its `done` event's seconds, descriptor to the end. */
  transferSeconds: number
  getCpu: number
  getPeakRss: number
  sendCpu: number
}

/** One `haul get` from spawn to exit, with the sender's CPU over the same time. */
async function getOnce(sender: ChildProcess, ticket: string, out: string): Promise<HaulRun> {
  const sendBefore = cpuSecondsOf(sender.pid!)!
  const started = performance.now()
  const r = await runMeasured(haul, ['get', ticket, '-o', out, '--json', ...getArgs])
  const seconds = (performance.now() - started) / 1000
  const got = (await stat(out)).size
  if (got !== size) throw new Error(`haul get wrote ${got} bytes of ${size}`)
  await rm(out, { force: true })
  const done = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .at(-1)
  return {
    seconds,
    transferSeconds: Number(done?.seconds),
    getCpu: r.cpuSeconds,
    getPeakRss: r.peakRss,
    sendCpu: cpuSecondsOf(sender.pid!)! - sendBefore,
  }
}

await ensureDataFile(data, file, size)
const label = await dataLabel(data, file)
const work = await mkdtemp(join(tmpdir(), 'haul-bench-get-'))
const sender = spawn(
  haul,
  ['send', file, '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(work, 'data')],
  { stdio: ['ignore', 'pipe', 'inherit'] },
)
try {
  const ticket = await firstJson(sender, (o) => (o.event === 'published' ? String(o.ticket) : undefined))
  console.log(
    `bench/get-process: ${(size / MB).toFixed(0)} MB ${label}, whole \`haul get${getArgs.length > 0 ? ` ${getArgs.join(' ')}` : ''}\` processes (spawn to exit) against the bare noise stream, 127.0.0.1; load average ${loadavg()[0]!.toFixed(1)}`,
  )
  const out = join(work, 'out.bin')
  const done: Array<{ bare: number; haul: HaulRun }> = []
  for (let round = 1; round <= rounds; round++) {
    const bare = (await measureRawStream({ mib: size / 1024 / 1024 })).mbps
    const run = await getOnce(sender, ticket, out)
    done.push({ bare, haul: run })
    const mbps = size / MB / run.seconds
    console.log(
      `round ${round}: bare stream ${bare.toFixed(0)} MB/s; haul get ${run.seconds.toFixed(2)} s = ${mbps.toFixed(0)} MB/s (${(mbps / bare).toFixed(2)}x), its transfer ${run.transferSeconds.toFixed(2)} s; CPU get ${run.getCpu.toFixed(2)} s, send ${run.sendCpu.toFixed(2)} s; get peak RSS ${(run.getPeakRss / MB).toFixed(0)} MB`,
    )
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!
  const ratios = done.map((d) => size / MB / d.haul.seconds / d.bare)
  const gib = size / GiB
  const cpu = median(done.map((d) => (d.haul.getCpu + d.haul.sendCpu) / gib))
  const target = size >= 4 * GiB ? 1.0 : 0.9
  console.log(
    `\nhaul get / bare stream: median ${median(ratios).toFixed(2)}x (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}; target ≥ ${target.toFixed(1)}x at ${size >= 4 * GiB ? '4' : '1'} GiB); CPU per GiB, haul get + haul send, median: ${cpu.toFixed(2)} s`,
  )
} finally {
  sender.kill('SIGINT')
  await new Promise((resolve) => sender.once('close', resolve))
  await rm(work, { recursive: true, force: true })
}
