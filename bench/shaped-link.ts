/**
 * bench/shaped-link: one file between two network namespaces joined by a veth whose ends both go
 * through tbf at a known rate, so that the link, not the two shared cores, is the bottleneck, as
 * between two machines. Each fetch is a whole process timed from spawn to exit: `haul get` of a
 * `haul send` ticket, and in the same run the same bytes over a bare TCP stream in the same
 * namespaces (bench/bare-tcp-peer.ts: read, send, write, sync; no chunks, hashes or encryption).
 * Rounds alternate the two. Prints goodput, the link rate and their ratio, and haul / bare; also
 * each process's own transfer time (bare: connect to the last byte written, before its sync; haul:
 * its `done` event, from the descriptor to the end) so that start-up and finish show apart.
 *
 *   npx node bench/shaped-link.ts                                  # 256 MiB at 100 Mbit/s
 *   HAUL_BENCH_RATE_MBIT=50 HAUL_BENCH_MIB=128 npx node bench/shaped-link.ts
 *   HAUL_BENCH_ROUNDS=3 ...                                        # the table shows the medians
 *   HAUL_BENCH_DATA=logs ...                                       # an access log (zstd-1 keeps ~0.19)
 *   HAUL_BENCH_DATA=text ...                                       # word salad (zstd-1 keeps ~0.42)
 *   also: HAUL_BENCH_MTU (1500), HAUL_BENCH_BURST and HAUL_BENCH_LIMIT (tbf bytes; defaults:
 *   tbfDefaults in test/support/netns.ts, where they are explained)
 *
 * Needs root, iproute2 and procps (test/support/netns.ts says what is missing). Target: haul's
 * goodput ≥ 0.9x the link rate for random data; for text, as many times the link rate as the
 * codec's choice makes of it (the bare stream sends it as it is). No TCP stream reaches the rate itself: tbf counts whole frames,
 * and a full-size segment carries MTU − 52 bytes (IP, TCP, timestamps) in MTU + 14 (Ethernet),
 * 1448 / 1514 = 0.956 at MTU 1500; the output shows that ceiling.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { requireNetns, type Shaping, Topology, tbfDefaults } from '../test/support/netns.ts'
import {
  benchDataFromEnv,
  benchFilePath,
  dataLabel,
  ensureDataFile,
  firstJson,
  MB,
  MiB,
  sizeFromEnv,
} from './lib/proc.ts'

const rate = Number(process.env.HAUL_BENCH_RATE_MBIT ?? 100)
const size = sizeFromEnv(0.25)
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 1))
const mtu = Number(process.env.HAUL_BENCH_MTU ?? 1500)
const envBytes = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name])
const shape: Shaping = {
  rateMbit: rate,
  burstBytes: envBytes('HAUL_BENCH_BURST') ?? tbfDefaults(rate).burst,
  limitBytes: envBytes('HAUL_BENCH_LIMIT') ?? tbfDefaults(rate).limit,
}
const data = benchDataFromEnv()
const file = process.env.HAUL_BENCH_FILE ?? benchFilePath(tmpdir(), data, size)
const haul = new URL('../bin/haul.js', import.meta.url).pathname
const peer = new URL('./bare-tcp-peer.ts', import.meta.url).pathname
const linkBytesPerSec = (rate * 1e6) / 8
const ceiling = (mtu - 52) / (mtu + 14)
/** Hang guard for one fetch: three times the link's time for the file, and a minute. */
const guardMs = ((3 * size) / linkBytesPerSec / ceiling) * 1000 + 60_000

interface Run {
  seconds: number
  /** The process's own figure: bare, connect to last byte written; haul, its `done` event's seconds. */
  inner: number
  /** Bare only: its final fsync. */
  sync: number
  drops: number
  retransmits: number
}

await requireNetns({ shaping: true })
await ensureDataFile(data, file, size)
const label = await dataLabel(data, file)
const work = await mkdtemp(join(tmpdir(), 'haul-bench-shaped-'))
const topo = await Topology.create()
try {
  await topo.namespace('a')
  await topo.namespace('b')
  const link = await topo.link(
    { ns: 'a', address: '10.231.1.1/24' },
    { ns: 'b', address: '10.231.1.2/24' },
    { mtu, shape },
  )
  /** The sender side's counters: tbf drops on its egress, TCP segments it sent again. */
  const counters = async (): Promise<{ drops: number; retransmits: number }> => {
    const qdisc = await topo.exec('a', 'tc', ['-s', 'qdisc', 'show', 'dev', link.a.dev])
    const nstat = await topo.exec('a', 'nstat', ['-saz', 'TcpRetransSegs'])
    return {
      drops: Number(/dropped (\d+)/.exec(qdisc)?.[1] ?? Number.NaN),
      retransmits: Number(/TcpRetransSegs\s+(\d+)/.exec(nstat)?.[1] ?? Number.NaN),
    }
  }
  /** Runs `command args` in b to its exit: seconds from spawn, and the counters' growth. */
  const timed = async (command: string, args: string[], out: string): Promise<Run> => {
    const before = await counters()
    const started = performance.now()
    const child = topo.spawn('b', command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    const guard = setTimeout(() => child.kill('SIGKILL'), guardMs)
    let last: Record<string, unknown> = {}
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) last = JSON.parse(line) as Record<string, unknown>
    })
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    const seconds = (performance.now() - started) / 1000
    clearTimeout(guard)
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}`)
    const got = (await stat(out)).size
    if (got !== size) throw new Error(`${command} wrote ${got} bytes of ${size}`)
    await rm(out, { force: true })
    const after = await counters()
    return {
      seconds,
      inner: Number(last.seconds),
      sync: Number(last.syncSeconds),
      drops: after.drops - before.drops,
      retransmits: after.retransmits - before.retransmits,
    }
  }

  const bareServer = topo.spawn('a', process.execPath, [peer, 'serve', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await firstJson(bareServer, (o) => (typeof o.port === 'number' ? o.port : undefined))
  const sender = topo.spawn('a', haul, ['send', file, '--json', '--data-dir', join(work, 'data')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const ticket = await firstJson(sender, (o) => (o.event === 'published' ? String(o.ticket) : undefined))
  const d = tbfDefaults(rate)
  console.log(
    `bench/shaped-link: ${(size / MiB).toFixed(0)} MiB ${label}, namespaces a → b over a veth, tbf ${rate} Mbit/s both ways (burst ${shape.burstBytes} B${shape.burstBytes === d.burst ? '' : ' (set)'}, limit ${shape.limitBytes} B${shape.limitBytes === d.limit ? '' : ' (set)'}), MTU ${mtu}; TCP payload ceiling ${(rate * ceiling).toFixed(1)} Mbit/s (${ceiling.toFixed(3)}x); whole processes, spawn to exit; load average ${loadavg()[0]!.toFixed(1)}`,
  )

  const out = join(work, 'out.bin')
  const done: Array<{ bare: Run; haul: Run }> = []
  for (let round = 1; round <= rounds; round++) {
    const bare = await timed(process.execPath, [peer, 'fetch', link.a.ip, String(port), out], out)
    const got = await timed(haul, ['get', ticket, '-o', out, '--json'], out)
    done.push({ bare, haul: got })
    console.log(
      `round ${round}: bare TCP ${bare.seconds.toFixed(2)} s (stream ${bare.inner.toFixed(2)} s, sync ${bare.sync.toFixed(2)} s), haul ${got.seconds.toFixed(2)} s (${(bare.seconds / got.seconds).toFixed(3)}x bare)`,
    )
  }
  bareServer.kill('SIGKILL')
  sender.kill('SIGINT')

  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!
  const row = (name: string, runs: Run[], bareSeconds: number): string => {
    const s = median(runs.map((r) => r.seconds))
    const inner = median(runs.map((r) => r.inner))
    const mbit = (size * 8) / s / 1e6
    const drops = runs.map((r) => r.drops).join(', ')
    const retransmits = runs.map((r) => r.retransmits).join(', ')
    return `| ${name} | ${s.toFixed(2)} | ${inner.toFixed(2)} | ${mbit.toFixed(1)} | ${(size / s / MB).toFixed(2)} | ${(mbit / rate).toFixed(3)} | ${(bareSeconds / s).toFixed(3)} | ${drops} | ${retransmits} |`
  }
  const bareS = median(done.map((r) => r.bare.seconds))
  console.log(
    `\n| run${rounds > 1 ? ` (median of ${rounds})` : ''} | seconds | transfer s (its own figure) | goodput Mbit/s | MB/s | / link | / bare | tbf drops | TCP retransmits |`,
  )
  console.log('|---|---|---|---|---|---|---|---|---|')
  console.log(
    row(
      'bare TCP stream',
      done.map((r) => r.bare),
      bareS,
    ),
  )
  console.log(
    row(
      'haul get',
      done.map((r) => r.haul),
      bareS,
    ),
  )
  console.log(`link ${rate} Mbit/s = ${(linkBytesPerSec / MB).toFixed(2)} MB/s; target: haul / link ≥ 0.9`)
} finally {
  await topo.teardown()
  await rm(work, { recursive: true, force: true })
}
