/**
 * bench/dht-fanout: one seeder, N receivers of one file at once, all on one DHT, every receiver
 * fetching by content id with `provide` (it serves what it has verified from its first chunk,
 * and the others find it there). What the seeder uploads for the whole fan-out, in copies of the
 * file, is the figure (target <= 3); beside it, the aggregate goodput and the slowest receiver.
 *
 *   npx node bench/dht-fanout.ts                                  # N = 50, 256 MiB, seeder at 32 MiB/s
 *   HAUL_DHT_FANOUT_N=16 HAUL_DHT_FANOUT_MIB=64 npx node bench/dht-fanout.ts
 *   HAUL_DHT_FANOUT_SEEDER_MIB_S=0                                # the seeder's upload unlimited
 *
 * The seeder's upload limit stands for a seeder's uplink: a swarm exists to go beyond it.
 * Receivers are processes of one engine each (one worker). Needs `npm run build`.
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
interface Done {
  type: 'done'
  seconds: number
  bytes: number
  peers: number
  fromSeeder: boolean
}

const N = Number(process.env.HAUL_DHT_FANOUT_N ?? 50)
const size = Number(process.env.HAUL_DHT_FANOUT_MIB ?? 256) * MiB
const seederRate = Number(process.env.HAUL_DHT_FANOUT_SEEDER_MIB_S ?? 32) * MiB
const peer = new URL('./dht-fanout-peer.ts', import.meta.url).pathname
const file = join(tmpdir(), `haul-fanout-${size}.bin`)

await ensureRandomFile(file, size)
const work = await mkdtemp(join(tmpdir(), 'haul-dht-fanout-'))
console.log(
  `bench/dht-fanout: ${size / MiB} MiB, one seeder (${seederRate > 0 ? `${seederRate / MiB} MiB/s upload` : 'unlimited'}), ${N} receivers on one DHT, each with provide`,
)
const seeder = forkPeer(peer, ['seed', file, join(work, 'seeder'), String(seederRate)])
const receivers: ChildProcess[] = []
try {
  const s = await nextMessage<Ready>(seeder, 'ready')
  for (let i = 0; i < N; i++)
    receivers.push(forkPeer(peer, ['get', join(work, `r-${i}.bin`), s.addresses[0]!]))
  await Promise.all(receivers.map((r) => nextMessage(r, 'ready')))
  const t0 = performance.now()
  const dones = receivers.map((r) => nextMessage<Done>(r, 'done'))
  for (const r of receivers) r.send({ type: 'go', cid: s.cid })
  const done = await Promise.all(dones)
  const seconds = (performance.now() - t0) / 1000
  seeder.send({ type: 'stats' })
  const { stats } = await nextMessage<{ stats: { serving: { chunks: { served: number; reads: number } } } }>(
    seeder,
    'stats',
  )
  const copies = stats.serving.chunks.served / s.chunks
  const slowest = Math.max(...done.map((d) => d.seconds))
  console.log(
    `all ${N} done in ${seconds.toFixed(1)} s (slowest receiver ${slowest.toFixed(1)} s); aggregate goodput ${((N * size) / seconds / MiB).toFixed(1)} MiB/s`,
  )
  console.log(
    `seeder uploaded ${stats.serving.chunks.served} chunks = ${copies.toFixed(2)} copies of the file (target <= 3); ${done.filter((d) => d.fromSeeder).length} receivers got everything from one peer`,
  )
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
