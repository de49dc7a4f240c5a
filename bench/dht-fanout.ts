/**
 * bench/dht-fanout: one seeder, N receivers of one file at once, all on one DHT, every receiver
 * fetching by content id with `provide` (it serves what it has verified from its first chunk,
 * and the others find it there). What the seeder uploads for the whole fan-out, in copies of the
 * file, is the figure (target <= 3); beside it, the aggregate goodput and the slowest receiver.
 *
 *   npx node bench/dht-fanout.ts                                  # N = 50, 32 MiB, seeder at 0.5 MiB/s
 *   HAUL_DHT_FANOUT_N=8 HAUL_DHT_FANOUT_MIB=64 HAUL_DHT_FANOUT_SEEDER_MIB_S=16 npx node bench/dht-fanout.ts
 *   HAUL_DHT_FANOUT_SEEDER_MIB_S=0                                # the seeder's upload unlimited
 *   HAUL_DHT_FANOUT_PER_PROCESS=5                                 # receiver engines per process
 *   HAUL_DHT_FANOUT_SPREAD_MS=0                                   # the seeder's server.spreadMs (0: first come, first served)
 *
 * The seeder's upload limit stands for a seeder's uplink: a swarm exists to go beyond it. What it
 * uploads is its rate times the fan-out's duration, and here the duration is set by what 51
 * engines on two cores can move together (11-13 MiB/s at 50 receivers): a seeder faster than
 * a few times that over N is not the bottleneck, and receivers take its spare upload.
 * Receivers are engines of one worker each, several to a process: fifty processes starting at
 * once on two cores spend most of a minute in start-up alone, every peer's timeouts firing while
 * it does (a machine each is what the receivers stand for). Needs `npm run build`.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { forkPeer, nextMessage } from './lib/ipc.ts'
import { ensureRandomFile, MiB } from './lib/proc.ts'

interface Ready {
  type: 'ready'
  cid: string
  addresses: string[]
  chunks: number
}
type Outcome =
  | { seconds: number; bytes: number; peers: number; fromSeeder: boolean; duplicateBytes: number }
  | { error: string }
interface Done {
  type: 'done'
  results: Outcome[]
}

const N = Number(process.env.HAUL_DHT_FANOUT_N ?? 50)
const size = Number(process.env.HAUL_DHT_FANOUT_MIB ?? 32) * MiB
const seederRate = Number(process.env.HAUL_DHT_FANOUT_SEEDER_MIB_S ?? 0.5) * MiB
const perProcess = Number(process.env.HAUL_DHT_FANOUT_PER_PROCESS ?? 5)
const peer = new URL('./dht-fanout-peer.ts', import.meta.url).pathname
const file = join(tmpdir(), `haul-fanout-${size}.bin`)

await ensureRandomFile(file, size)
const work = await mkdtemp(join(tmpdir(), 'haul-dht-fanout-'))
console.log(
  `bench/dht-fanout: ${size / MiB} MiB, one seeder (${seederRate > 0 ? `${seederRate / MiB} MiB/s upload, server.spreadMs ${process.env.HAUL_DHT_FANOUT_SPREAD_MS ?? 'default'}` : 'unlimited'}), ${N} receivers on one DHT, each with provide`,
)
const seeder = forkPeer(peer, ['seed', file, join(work, 'seeder'), String(seederRate)])
const receivers: ChildProcess[] = []
try {
  const s = await nextMessage<Ready>(seeder, 'ready')
  for (let i = 0; i < N; i += perProcess) {
    const count = String(Math.min(perProcess, N - i))
    receivers.push(forkPeer(peer, ['get', join(work, `r-${i}.bin`), s.addresses[0]!, count]))
  }
  await Promise.all(receivers.map((r) => nextMessage(r, 'ready')))
  const t0 = performance.now()
  const dones = receivers.map((r) => nextMessage<Done>(r, 'done'))
  for (const r of receivers) r.send({ type: 'go', cid: s.cid })
  const settled = await Promise.allSettled(dones)
  const seconds = (performance.now() - t0) / 1000
  const outcomes = settled.flatMap((d) => (d.status === 'fulfilled' ? d.value.results : []))
  const done = outcomes.flatMap((o) => ('error' in o ? [] : [o]))
  if (done.length < N) {
    process.exitCode = 1
    const codes = outcomes.flatMap((o) => ('error' in o ? [o.error] : []))
    console.log(
      `${N - done.length} of ${N} receivers failed (${codes.join(', ') || 'a process exited'}; errors above)`,
    )
  }
  seeder.send({ type: 'stats' })
  const { stats } = await nextMessage<{ stats: { serving: { chunks: { served: number; reads: number } } } }>(
    seeder,
    'stats',
  )
  const copies = stats.serving.chunks.served / s.chunks
  const slowest = Math.max(...done.map((d) => d.seconds))
  console.log(
    `${done.length} of ${N} done in ${seconds.toFixed(1)} s (slowest receiver ${slowest.toFixed(1)} s); aggregate goodput ${((done.length * size) / seconds / MiB).toFixed(1)} MiB/s`,
  )
  console.log(
    `seeder uploaded ${stats.serving.chunks.served} chunks = ${copies.toFixed(2)} copies of the file (target <= 3); ${done.filter((d) => d.fromSeeder).length} receivers got everything from one peer; ${(done.reduce((n, d) => n + d.peers, 0) / Math.max(1, done.length)).toFixed(1)} providers per receiver`,
  )
  const duplicates = done.reduce((n, d) => n + d.duplicateBytes, 0)
  console.log(`duplicate bytes received (copies that lost the race): ${(duplicates / MiB).toFixed(1)} MiB`)
  console.log(`load average ${loadavg()[0]!.toFixed(1)}`)
} finally {
  for (const c of [seeder, ...receivers]) if (c.connected) c.send({ type: 'exit' })
  await Promise.all(
    [seeder, ...receivers].map(
      (c) => new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null))),
    ),
  )
  await rm(work, { recursive: true, force: true })
}
