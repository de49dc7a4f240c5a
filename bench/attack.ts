/**
 * bench/attack: a legitimate transfer while hostile peers work on the sender, against the same
 * transfer unattacked, in one run.
 *
 *   npx node bench/attack.ts                      # 1 GiB, 4 attackers
 *   HAUL_BENCH_MIB=256 npx node bench/attack.ts   # size knob
 *   HAUL_BENCH_ATTACKERS=8 ...                    # attacker processes (default 4)
 *   HAUL_BENCH_ROUNDS=3 ...                       # unattacked and attacked alternate; medians compared
 *   HAUL_BENCH_TIMEOUT_S=120 ...                  # a fetch still running then counts as 0 MB/s (default 300)
 *   HAUL_ATTACK_SOCKETS / HAUL_ATTACK_HALF_FRAMES / HAUL_ATTACK_NO_READ  # per attacker (16 / 32 / 4)
 *
 * Each attacker (bench/attack-peer.ts) keeps silent TCP sockets open to the sender (slowloris),
 * streams stuck in the middle of a request frame announced at the frame limit (half frames), and
 * streams that ask for every chunk and never read. Each phase starts a fresh sender process, so
 * its peak RSS is that phase's. Targets (issue 18): goodput under attack >= 0.7x unattacked; the
 * sender's peak RSS under attack <= its idle RSS + 100 MB.
 */
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeSwarmTicket } from '../dist/ticket/multi-ticket.js'
import { forkPeer, nextMessage } from './lib/ipc.ts'
import { ensureRandomFile, MB, sizeFromEnv } from './lib/proc.ts'

interface Stats {
  type: 'stats'
  seconds?: number
  peakRss: number
  idleRss: number
}

const size = sizeFromEnv(1)
const attackers = Number(process.env.HAUL_BENCH_ATTACKERS ?? 4)
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 1))
/** A fetch still running after this long is stopped and counted as 0 MB/s. */
const timeoutS = Number(process.env.HAUL_BENCH_TIMEOUT_S ?? 300)
const peerScript = new URL('./transfer-peer.ts', import.meta.url).pathname
const attackScript = new URL('./attack-peer.ts', import.meta.url).pathname
const file = join(tmpdir(), `haul-bench-${size}.bin`)
const dest = join(tmpdir(), `haul-bench-attack-${process.pid}.out`)

/** One phase: a fresh sender, `n` attackers on it, then one fetch by a separate receiver process. */
async function phase(n: number): Promise<{ mbps: number; sender: Stats; attack: unknown[] }> {
  const sender = forkPeer(peerScript, ['send', file])
  const { ticket } = await nextMessage<{ ticket: string }>(sender, 'ready')
  const tcp = decodeSwarmTicket(ticket).providers[0]!.addrs.find((a) => a.includes('/tcp/')) ?? ''
  const [, host, port] = /\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(tcp) ?? []
  // Silent sockets come from an address of their own per attacker (127.0.0.2, ...), as from
  // other hosts; the libp2p attacks share 127.0.0.1 with the legitimate receiver.
  const attack = Array.from({ length: n }, (_, i) =>
    forkPeer(attackScript, [ticket, host!, port!, `127.0.0.${i + 2}`]),
  )
  await Promise.all(attack.map((a) => nextMessage(a, 'ready')))
  // Let the attack settle in before the legitimate transfer starts.
  if (n > 0) await new Promise((r) => setTimeout(r, 3000))
  const receiver = forkPeer(peerScript, ['get', ticket, dest])
  // A transfer the attack stops altogether is a result too, not a hang of the bench.
  const limit = setTimeout(() => receiver.kill('SIGKILL'), timeoutS * 1000)
  const got = await nextMessage<Stats>(receiver, 'stats').catch(() => undefined)
  clearTimeout(limit)
  const attackStats = await Promise.all(
    attack.map(async (a) => {
      const s = nextMessage(a, 'stats')
      a.send({ type: 'exit' })
      return s
    }),
  )
  sender.send({ type: 'exit' })
  const sent = await nextMessage<Stats>(sender, 'stats')
  await rm(dest, { force: true })
  return { mbps: got === undefined ? 0 : size / got.seconds! / MB, sender: sent, attack: attackStats }
}

await ensureRandomFile(file, size)
console.log(
  `bench/attack: ${(size / MB).toFixed(0)} MB random file, ${attackers} attackers, 127.0.0.1, tcp+noise+yamux`,
)
const clean: number[] = []
const attacked: number[] = []
const overIdle: number[] = []
for (let round = 1; round <= rounds; round++) {
  const a = await phase(0)
  clean.push(a.mbps)
  console.log(
    `unattacked (round ${round}): ${a.mbps.toFixed(0)} MB/s; sender peak ${(a.sender.peakRss / MB).toFixed(0)} MB (idle ${(a.sender.idleRss / MB).toFixed(0)})`,
  )
  const b = await phase(attackers)
  attacked.push(b.mbps)
  overIdle.push(b.sender.peakRss - b.sender.idleRss)
  console.log(
    `attacked (round ${round}): ${b.mbps.toFixed(0)} MB/s; sender peak ${(b.sender.peakRss / MB).toFixed(0)} MB (idle ${(b.sender.idleRss / MB).toFixed(0)}, +${((b.sender.peakRss - b.sender.idleRss) / MB).toFixed(0)}); attack ${JSON.stringify(b.attack)}`,
  )
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!
console.log(
  `goodput under attack / unattacked: ${(median(attacked) / median(clean)).toFixed(2)}x (target >= 0.7); sender peak over idle under attack: +${(Math.max(...overIdle) / MB).toFixed(0)} MB (target <= 100)`,
)
