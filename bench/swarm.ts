/**
 * bench/swarm: one receiver pulls one file from four seeders at once, each seeder in its own
 * process and upload-limited to the same rate R (the engine's `limits.uploadBytesPerSec`). The
 * reference is the four limits together, 4R: a perfect scheduler reaches it.
 *
 *   npx node bench/swarm.ts                          # 256 MiB, R = 4 MiB/s
 *   HAUL_SWARM_MIB=128 HAUL_SWARM_RATE_MIB=8 npx node bench/swarm.ts
 *   HAUL_SWARM_BURST_MIB=2                           # each seeder's bucket depth (default 2 MiB)
 *
 * The bucket depth matters with 1 MiB chunks: at the engine's default (rate / 10, 0.8 MiB at
 * 8 MiB/s) the bucket cannot bank one whole chunk, so every pause in a seeder's serve loop is
 * bandwidth lost for good. 2 MiB lets it bank two; the limit still holds over any interval T
 * (burst + R·T), and the bench prints that bound beside 4R.
 *
 * Prints the aggregate goodput as a ratio of 4R (target ≥ 0.9) and the endgame's duplicate bytes
 * as a share of the file. Needs `npm run build` (the processes run dist/).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { joinTickets } from '../dist/ticket/multi-ticket.js'
import { forkPeer, nextMessage } from './lib/ipc.ts'
import { ensureRandomFile, MiB } from './lib/proc.ts'

interface Stats {
  type: 'stats'
  seconds: number
  bytes: number
  swarm: {
    duplicateBytes: number
    corruptChunks: number
    peers: Array<{ peerId: string; verifiedBytes: number; out?: string }>
  }
}

const SEEDERS = 4
const size = Number(process.env.HAUL_SWARM_MIB ?? 256) * MiB
const rate = Number(process.env.HAUL_SWARM_RATE_MIB ?? 4) * MiB
const burst = Number(process.env.HAUL_SWARM_BURST_MIB ?? 2) * MiB
const peer = new URL('./swarm-peer.ts', import.meta.url).pathname
const file = join(tmpdir(), `haul-swarm-${size}.bin`)
const dest = join(tmpdir(), `haul-swarm-${process.pid}.out`)

await ensureRandomFile(file, size)
console.log(
  `bench/swarm: ${size / MiB} MiB random file, ${SEEDERS} seeder processes at ${rate / MiB} MiB/s upload each (burst ${burst / MiB} MiB), one receiver`,
)
const dataDir = await mkdtemp(join(tmpdir(), 'haul-swarm-bench-'))
const seeders = Array.from({ length: SEEDERS }, (_, i) =>
  forkPeer(peer, ['seed', file, String(rate), join(dataDir, `seeder-${i}`), String(burst)]),
)
try {
  const tickets = await Promise.all(seeders.map((s) => nextMessage<{ ticket: string }>(s, 'ready')))
  const receiver = forkPeer(peer, ['get', joinTickets(tickets.map((t) => t.ticket)), dest])
  const got = await nextMessage<Stats>(receiver, 'stats')
  const goodput = got.bytes / got.seconds
  const reference = SEEDERS * rate
  console.log(`time ${got.seconds.toFixed(2)} s, goodput ${(goodput / MiB).toFixed(1)} MiB/s`)
  console.log(
    `per seeder MiB: ${got.swarm.peers.map((p) => (p.verifiedBytes / MiB).toFixed(1)).join(' / ')}; corrupt chunks ${got.swarm.corruptChunks}`,
  )
  console.log(
    `aggregate goodput / 4R = ${(goodput / MiB).toFixed(1)} / ${(reference / MiB).toFixed(1)} MiB/s = ${(goodput / reference).toFixed(3)} (target >= 0.9)`,
  )
  const bound = (SEEDERS * (burst + rate * got.seconds)) / got.seconds
  console.log(
    `(the buckets' own bound over this run, 4 × (burst + R·T) / T = ${(bound / MiB).toFixed(1)} MiB/s: goodput / bound = ${(goodput / bound).toFixed(3)})`,
  )
  console.log(
    `endgame duplicate bytes: ${(got.swarm.duplicateBytes / MiB).toFixed(2)} MiB = ${((100 * got.swarm.duplicateBytes) / got.bytes).toFixed(2)} % of the file`,
  )
} finally {
  for (const s of seeders) s.send({ type: 'exit' })
  await Promise.all(
    seeders.map((s) => new Promise((r) => (s.exitCode === null ? s.once('exit', r) : r(null)))),
  )
  await rm(dest, { force: true })
}
