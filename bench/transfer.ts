/**
 * bench/transfer: a file of N GiB between two processes on loopback over
 * tcp+noise+yamux. In the same run: (a) the raw libp2p stream of the same
 * stack (no chunking, no verification) as the reference, and (b) the naive
 * baseline that reads the whole file into memory and sends it in one go.
 *
 *   npx node bench/transfer.ts                  # 1 GiB
 *   HAUL_BENCH_GIB=4 npx node bench/transfer.ts
 *   HAUL_BENCH_MIB=256 npx node bench/transfer.ts
 *   HAUL_BENCH_NAIVE=0 ...                      # skip (b) (it cannot do files > 2 GiB anyway)
 *   HAUL_BENCH_DATA=logs ...                    # compressible: an access log (zstd-1 keeps ~0.19 of it)
 *   HAUL_BENCH_DATA=text ...                    # compressible: word salad (zstd-1 keeps ~0.42 of it)
 *   HAUL_BENCH_ROUNDS=3 ...                     # alternate (a) and haul 3 times; the table shows the median round
 *
 * Targets (issue 3): goodput ≥ 0.9x (a), floor 0.8x; each process's peak RSS ≤ idle + 100 MB.
 * Last, CPU seconds per GiB of both processes together (issue 23: ≤ 5 s), beside the floor's
 * parts measured in this process: ChaCha20-Poly1305 once per side, SHA-256 once (receiver).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ENGINE_NODE_FLAGS } from '../src/process-flags.ts'
import { measureCpuFloor } from './lib/cpu-floor.ts'
import { benchDataFromEnv, benchFilePath, dataLabel, ensureDataFile, MB, sizeFromEnv } from './lib/proc.ts'
import { measureRawStream } from './lib/raw-stream.ts'

interface Stats {
  type: 'stats'
  seconds?: number
  bytes?: number
  peakRss: number
  idleRss: number
  cpuSeconds: number
}

const size = sizeFromEnv(1)
const peer = new URL('./transfer-peer.ts', import.meta.url).pathname
const data = benchDataFromEnv()
const file = process.env.HAUL_BENCH_FILE ?? benchFilePath(tmpdir(), data, size)
const dest = join(tmpdir(), `haul-bench-${process.pid}.out`)
const runNaive = process.env.HAUL_BENCH_NAIVE !== '0' && size < 2 * 1024 ** 3

function start(args: string[]): ChildProcess {
  // Peers run with the flags the haul bin uses (src/process-flags.ts); override with e.g.
  // HAUL_BENCH_EXEC_ARGV replaces the engine's flags (src/process-flags.ts); to profile both peers
  // as users run them, keep those: "--max-semi-space-size=1 --heap-growing-percent=100 --cpu-prof
  // --cpu-prof-dir=/tmp/prof" (without them each peer runs a full GC every ~15 MB received or sent).
  const execArgv = process.env.HAUL_BENCH_EXEC_ARGV?.split(' ').filter(Boolean) ?? [...ENGINE_NODE_FLAGS]
  return fork(peer, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
}
function next<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { type: string }) => {
      if (m.type === type) {
        child.off('message', onMsg)
        resolve(m as T)
      }
    }
    child.on('message', onMsg)
    child.once('exit', (code) => reject(new Error(`${args(child)} exited ${code} before '${type}'`)))
  })
}
const args = (c: ChildProcess) => c.spawnargs.slice(2).join(' ')

async function pair(sendArgs: string[], getArgs: (ready: Record<string, unknown>) => string[]) {
  const sender = start(sendArgs)
  const ready = await next<Record<string, unknown>>(sender, 'ready')
  const receiver = start(getArgs(ready))
  const got = await next<Stats>(receiver, 'stats')
  sender.send({ type: 'exit' })
  const sent = await next<Stats>(sender, 'stats')
  await rm(dest, { force: true })
  return { got, sent }
}

await ensureDataFile(data, file, size)
const label = await dataLabel(data, file)
console.log(
  `bench/transfer: ${(size / MB).toFixed(0)} MB ${label}, two processes, 127.0.0.1, tcp+noise+yamux`,
)

// Rounds alternate (a) and haul, so both see the same machine; the table shows the median round
// by ratio. The raw stream alone moves by ±15 % between runs here, so one round's ratio is rough.
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 1))
const done: Array<{
  raw: Awaited<ReturnType<typeof measureRawStream>> | { mbps: number; senderPeakRss: 0; receiverPeakRss: 0 }
  haul: Awaited<ReturnType<typeof pair>>
  haulRate: number
}> = []
for (let round = 1; round <= rounds; round++) {
  const raw =
    process.env.HAUL_BENCH_RAW === '0'
      ? { mbps: Number.NaN, senderPeakRss: 0 as const, receiverPeakRss: 0 as const }
      : await measureRawStream({ mib: size / 1024 / 1024, stack: 'noise' })
  console.log(`(a) raw libp2p stream: ${raw.mbps.toFixed(0)} MB/s`)
  const haul = await pair(['send', file], (r) => ['get', String(r.ticket), dest])
  const haulRate = size / haul.got.seconds! / MB
  if (process.env.HAUL_BENCH_THREADS === '1')
    console.log('threads', JSON.stringify({ sender: haul.sent, receiver: haul.got }))
  console.log(`haul: ${haulRate.toFixed(0)} MB/s (round ${round}: ${(haulRate / raw.mbps).toFixed(2)}x)`)
  done.push({ raw, haul, haulRate })
}
const key = (r: (typeof done)[number]) => (Number.isNaN(r.raw.mbps) ? r.haulRate : r.haulRate / r.raw.mbps)
const { raw, haul, haulRate } = [...done].sort((a, b) => key(a) - key(b))[(done.length - 1) >> 1]!
const rawCpu =
  'senderCpuSeconds' in raw
    ? `${raw.senderCpuSeconds.toFixed(1)} / ${raw.receiverCpuSeconds.toFixed(1)}`
    : '-'

let naive: Awaited<ReturnType<typeof pair>> | undefined
if (runNaive) {
  naive = await pair(['naive-send', file], (r) => [
    'naive-get',
    (r.addrs as string[]).join(','),
    String(r.peerId),
    dest,
  ])
  console.log(`(b) naive: ${(size / naive.got.seconds! / MB).toFixed(0)} MB/s`)
}

const mb = (n: number) => (n / MB).toFixed(0)
const cpu = (p: { sent: Stats; got: Stats }) =>
  `${p.sent.cpuSeconds.toFixed(1)} / ${p.got.cpuSeconds.toFixed(1)}`
console.log(
  '\n| run | goodput MB/s | ratio to (a) | sender peak / idle RSS MB | receiver peak / idle RSS MB | CPU s sender / receiver (transfer only) |',
)
console.log('|---|---|---|---|---|---|')
console.log(
  `| (a) raw libp2p stream | ${raw.mbps.toFixed(0)} | 1.00 | ${mb(raw.senderPeakRss)} | ${mb(raw.receiverPeakRss)} | ${rawCpu} |`,
)
console.log(
  `| haul (chunked, verified, written) | ${haulRate.toFixed(0)} | ${(haulRate / raw.mbps).toFixed(2)} | ${mb(haul.sent.peakRss)} / ${mb(haul.sent.idleRss)} | ${mb(haul.got.peakRss)} / ${mb(haul.got.idleRss)} | ${cpu(haul)} |`,
)
if (rounds > 1) {
  const growth = (s: Stats) => (s.peakRss - s.idleRss) / MB
  const worst = (pick: (r: (typeof done)[number]) => Stats) =>
    Math.max(...done.map((r) => growth(pick(r)))).toFixed(0)
  console.log(
    `\nmedian of ${rounds} rounds; ratios ${done.map((r) => (r.haulRate / r.raw.mbps).toFixed(2)).join(', ')}; largest peak − idle over the rounds: sender +${worst((r) => r.haul.sent)}, receiver +${worst((r) => r.haul.got)} MB`,
  )
}
if (naive !== undefined) {
  const rate = size / naive.got.seconds! / MB
  console.log(
    `| (b) naive whole-file | ${rate.toFixed(0)} | ${(rate / raw.mbps).toFixed(2)} | ${mb(naive.sent.peakRss)} / ${mb(naive.sent.idleRss)} | ${mb(naive.got.peakRss)} / ${mb(naive.got.idleRss)} | ${cpu(naive)} |`,
  )
}

const GiB = 1024 ** 3
const floor = measureCpuFloor()
const perGiB = (seconds: number) => (seconds / (size / GiB)).toFixed(2)
const rawPerGiB =
  'senderCpuSeconds' in raw ? `${perGiB(raw.senderCpuSeconds + raw.receiverCpuSeconds)} s` : '-'
console.log(
  `\nCPU per GiB, sender + receiver: haul ${perGiB(haul.sent.cpuSeconds + haul.got.cpuSeconds)} s (target <= 5 s), (a) ${rawPerGiB}; the floor's parts, measured here: ChaCha20-Poly1305 ${floor.chachaSeconds.toFixed(2)} s per side, SHA-256 ${floor.sha256Seconds.toFixed(2)} s once: ${(2 * floor.chachaSeconds + floor.sha256Seconds).toFixed(2)} s`,
)
