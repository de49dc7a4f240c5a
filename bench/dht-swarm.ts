/**
 * bench/dht-swarm: a swarm found through the DHT. Eight seeder processes, each upload-limited to
 * the same rate R, announce one file on a DHT they form on loopback (the first starts it, the
 * others join through it); then a whole `haul get <content id> --bootstrap <one seeder>` process
 * finds them and fetches from all at once. The reference is the eight limits together, 8R.
 *
 *   npx node bench/dht-swarm.ts                          # 256 MiB, R = 4 MiB/s
 *   HAUL_DHT_SWARM_MIB=128 HAUL_DHT_SWARM_RATE_MIB=2 npx node bench/dht-swarm.ts
 *
 * Prints the transfer's goodput (the get's own `done.seconds`) and the whole process's (spawn to
 * exit: start-up, DHT lookup, connections), each as a ratio of 8R (target >= 0.9), the time from
 * spawning `haul get` to its first verified bytes, and the load average. Each seeder's
 * bucket holds 2 MiB (bench/swarm.ts says why). Needs `npm run build` (the processes run dist/).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { forkPeer, nextMessage } from './lib/ipc.ts'
import { ensureRandomFile, MiB } from './lib/proc.ts'

interface Ready {
  type: 'ready'
  cid: string
  addresses: string[]
}

const SEEDERS = 8
const size = Number(process.env.HAUL_DHT_SWARM_MIB ?? 256) * MiB
const rate = Number(process.env.HAUL_DHT_SWARM_RATE_MIB ?? 4) * MiB
const burst = 2 * MiB
const peer = new URL('./swarm-peer.ts', import.meta.url).pathname
const haul = new URL('../bin/haul.js', import.meta.url).pathname
const file = join(tmpdir(), `haul-swarm-${size}.bin`)
const dest = join(tmpdir(), `haul-dht-swarm-${process.pid}.out`)

await ensureRandomFile(file, size)
console.log(
  `bench/dht-swarm: ${size / MiB} MiB random file, ${SEEDERS} seeder processes on one DHT at ${rate / MiB} MiB/s upload each, one haul get <content id>`,
)
const dataDir = await mkdtemp(join(tmpdir(), 'haul-dht-swarm-'))
const args = (i: number, dht: string): string[] => [
  'seed',
  file,
  String(rate),
  join(dataDir, `seeder-${i}`),
  String(burst),
  dht,
]
const seeders = [forkPeer(peer, args(0, 'start'))]
try {
  const first = await nextMessage<Ready>(seeders[0]!, 'ready')
  const bootstrap = first.addresses[0]!
  for (let i = 1; i < SEEDERS; i++) seeders.push(forkPeer(peer, args(i, bootstrap)))
  await Promise.all(seeders.slice(1).map((s) => nextMessage<Ready>(s, 'ready')))

  const t0 = performance.now()
  const get = spawn(
    process.execPath,
    [
      haul,
      'get',
      first.cid,
      '--bootstrap',
      bootstrap,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '-o',
      dest,
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let firstBytesAt: number | undefined
  let done: { bytes: number; seconds: number } | undefined
  createInterface({ input: get.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as { event: string; bytesDone?: number; bytes?: number; seconds?: number }
    if (e.event === 'progress' && (e.bytesDone ?? 0) > 0) firstBytesAt ??= performance.now()
    if (e.event === 'done') done = e as { bytes: number; seconds: number }
  })
  const code = await new Promise<number | null>((resolve) => get.once('exit', resolve))
  const wall = (performance.now() - t0) / 1000
  if (code !== 0 || done === undefined) throw new Error(`haul get exited ${code}`)
  const reference = SEEDERS * rate
  const transfer = done.bytes / done.seconds
  const whole = done.bytes / wall
  console.log(
    `first verified bytes ${((firstBytesAt! - t0) / 1000).toFixed(2)} s after spawning haul get; transfer ${done.seconds.toFixed(2)} s; whole process ${wall.toFixed(2)} s`,
  )
  console.log(
    `transfer goodput / 8R = ${(transfer / MiB).toFixed(1)} / ${(reference / MiB).toFixed(1)} MiB/s = ${(transfer / reference).toFixed(3)} (target >= 0.9)`,
  )
  console.log(
    `whole-process goodput / 8R = ${(whole / MiB).toFixed(1)} / ${(reference / MiB).toFixed(1)} MiB/s = ${(whole / reference).toFixed(3)}`,
  )
  console.log(`load average ${loadavg()[0]!.toFixed(1)} (2 cores: above 2, other work shared them)`)
} finally {
  for (const s of seeders) s.send({ type: 'exit' })
  await Promise.all(
    seeders.map((s) => new Promise((r) => (s.exitCode === null ? s.once('exit', r) : r(null)))),
  )
  await rm(dest, { force: true })
  await rm(dataDir, { recursive: true, force: true })
}
