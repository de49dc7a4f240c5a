/**
 * bench/relay: one file from namespace s to namespace g, both linked only to namespace r, once
 * directly (r routes the packets: kernel forwarding) and once through `haul relay` in r (the
 * ticket keeps only its relayed address), over the same links and in the same run. Each fetch is
 * a whole `haul get` process timed from spawn to exit. Prints each goodput, relayed / direct
 * (target ≥ 0.8), the relay's CPU seconds per GiB forwarded (from /proc: user + system) and its
 * peak resident memory. Last, with no route left between s and g, one fetch with the whole
 * ticket: the direct addresses fail at once and the transfer goes through the relay.
 *
 *   npx node bench/relay.ts                        # 1 GiB, one round of each, unshaped
 *   HAUL_BENCH_MIB=256 HAUL_BENCH_ROUNDS=3 npx node bench/relay.ts
 *   HAUL_BENCH_RATE_MBIT=100 HAUL_BENCH_MIB=256 npx node bench/relay.ts   # tbf on every link
 *
 * Both peers and the relay share this machine's cores, so a relayed transfer also pays for the
 * relay's CPU (Noise is end to end: the relay forwards ciphertext, it does not decrypt). Needs
 * root and iproute2 (test/support/netns.ts says what is missing).
 */
import { readFile, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeSwarmTicket, encodeSwarmTicket } from '../src/ticket/multi-ticket.ts'
import { requireNetns, Topology } from '../test/support/netns.ts'
import { cpuSecondsOf, ensureRandomFile, firstJson, GiB, MB, MiB, sizeFromEnv } from './lib/proc.ts'

const size = sizeFromEnv(1)
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 1))
/** Mbit/s of tbf on every veth end (0: unshaped, the two cores are the limit). */
const rate = Number(process.env.HAUL_BENCH_RATE_MBIT ?? 0)
const file = process.env.HAUL_BENCH_FILE ?? join(tmpdir(), `haul-bench-${size}.bin`)
const haul = new URL('../bin/haul.js', import.meta.url).pathname
const RELAY_IP = '10.231.22.1'
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024
}

await requireNetns()
await ensureRandomFile(file, size)
const topo = await Topology.create()
const out = join(tmpdir(), `haul-bench-relay-${process.pid}.bin`)
try {
  await topo.namespace('s')
  await topo.namespace('g')
  await topo.namespace('r', { forward: true })
  const shape = rate > 0 ? { shape: { rateMbit: rate } } : {}
  await topo.link({ ns: 's', address: '10.231.20.1/24' }, { ns: 'r', address: '10.231.20.254/24' }, shape)
  await topo.link({ ns: 'g', address: '10.231.21.1/24' }, { ns: 'r', address: '10.231.21.254/24' }, shape)
  await topo.exec('r', 'ip', ['addr', 'add', `${RELAY_IP}/32`, 'dev', 'lo'])
  await topo.route('s', 'default', '10.231.20.254')
  await topo.route('g', 'default', '10.231.21.254')

  const relay = topo.spawn('r', haul, ['relay', '--listen', `/ip4/${RELAY_IP}/tcp/0`, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const relayAddr = await firstJson(relay, (o) =>
    o.event === 'relay' ? (o.addresses as string[])[0] : undefined,
  )
  const sender = topo.spawn('s', haul, ['send', file, '--json', '--relay', relayAddr!], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const ticket = await firstJson(sender, (o) => (o.event === 'published' ? String(o.ticket) : undefined))
  const t = decodeSwarmTicket(ticket)
  const only = (relayed: boolean): string =>
    encodeSwarmTicket({
      ...t,
      providers: t.providers.map((p) => ({
        ...p,
        addrs: p.addrs.filter((a) => a.includes('/p2p-circuit') === relayed),
      })),
    })

  const fetch = async (which: string): Promise<{ seconds: number; route: unknown }> => {
    const started = performance.now()
    const child = topo.spawn('g', haul, ['get', which, '-o', out, '--json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const done = await firstJson(child, (o) => (o.event === 'done' ? o : undefined))
    await new Promise((resolve) => child.once('close', resolve))
    const seconds = (performance.now() - started) / 1000
    if ((await stat(out)).size !== size) throw new Error('short file')
    await rm(out)
    return { seconds, route: done.route }
  }

  console.log(
    `bench/relay: ${(size / MiB).toFixed(0)} MiB random file, namespaces s → g through r (direct: r forwards packets; relayed: haul relay in r), ${rate > 0 ? `tbf ${rate} Mbit/s on each link` : 'unshaped'}, whole haul get processes, spawn to exit; load average ${loadavg()[0]!.toFixed(1)}`,
  )
  const direct: number[] = []
  const relayed: number[] = []
  let relayCpu = 0
  for (let round = 1; round <= rounds; round++) {
    const d = await fetch(only(false))
    const cpuBefore = cpuSecondsOf(relay.pid!)!
    const r = await fetch(only(true))
    relayCpu += cpuSecondsOf(relay.pid!)! - cpuBefore
    if (d.route !== 'direct' || r.route !== 'relayed') throw new Error(`routes ${d.route}, ${r.route}`)
    direct.push(d.seconds)
    relayed.push(r.seconds)
    console.log(
      `round ${round}: direct ${d.seconds.toFixed(2)} s (${(size / d.seconds / MB).toFixed(1)} MB/s), relayed ${r.seconds.toFixed(2)} s (${(size / r.seconds / MB).toFixed(1)} MB/s), ${(d.seconds / r.seconds).toFixed(3)}x`,
    )
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!
  const dS = median(direct)
  const rS = median(relayed)
  console.log(`\n| route | seconds | MB/s | relayed / direct |`)
  console.log('|---|---|---|---|')
  console.log(`| direct | ${dS.toFixed(2)} | ${(size / dS / MB).toFixed(1)} | |`)
  console.log(`| relayed | ${rS.toFixed(2)} | ${(size / rS / MB).toFixed(1)} | ${(dS / rS).toFixed(3)} |`)
  console.log(
    `relay: ${(relayCpu / ((rounds * size) / GiB)).toFixed(2)} CPU seconds per GiB forwarded, peak RSS ${(await peakRssMiB(relay.pid!)).toFixed(0)} MiB; target relayed / direct ≥ 0.8`,
  )

  // Then s and g lose their way to each other (only the relay's address stays routed, and r
  // stops forwarding): the whole ticket, direct addresses first, must end up on the relay.
  for (const [ns, via] of [
    ['s', '10.231.20.254'],
    ['g', '10.231.21.254'],
  ] as const) {
    await topo.exec(ns, 'ip', ['route', 'del', 'default'])
    await topo.route(ns, `${RELAY_IP}/32`, via)
  }
  await topo.exec('r', 'sysctl', ['-qw', 'net.ipv4.ip_forward=0'])
  const alone = await fetch(ticket)
  if (alone.route !== 'relayed') throw new Error(`route ${alone.route} without a route between s and g`)
  console.log(
    `no route between s and g, the whole ticket: ${alone.seconds.toFixed(2)} s (${(size / alone.seconds / MB).toFixed(1)} MB/s), ${alone.route}`,
  )
  sender.kill('SIGINT')
  relay.kill('SIGINT')
} finally {
  await topo.teardown()
  await rm(out, { force: true })
}
