/**
 * bench/mixed-links: two receivers of one file from one sender, one on a slow link: does the slow
 * one hold the fast one back? Three network namespaces: the sender in `s`, a receiver in `f`
 * joined to it by an unshaped veth, a receiver in `w` joined by a veth shaped with tbf. First the
 * fast receiver alone (its reference), then the slow one started and, `HAUL_BENCH_HEAD_START_S`
 * later, the fast one again; each a whole `haul get` process, spawn to exit. Prints the fast
 * receiver's time and goodput beside it and alone, and their ratio (the sender's pacer,
 * src/serve/pack-pacer.ts, waits only for receivers about as fast as the one that would wait).
 *
 *   npx node bench/mixed-links.ts                        # 100 MiB, the slow link at 10 Mbit/s
 *   HAUL_BENCH_RATE_MBIT=20 HAUL_BENCH_MIB=256 npx node bench/mixed-links.ts
 *
 * Needs root, iproute2 and procps (test/support/netns.ts says what is missing).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireNetns, Topology, tbfDefaults } from '../test/support/netns.ts'
import { benchFilePath, ensureDataFile, firstJson, MiB, sizeFromEnv } from './lib/proc.ts'

const rate = Number(process.env.HAUL_BENCH_RATE_MBIT ?? 10)
const size = process.env.HAUL_BENCH_MIB === undefined ? 100 * MiB : sizeFromEnv(0)
const headStartMs = Number(process.env.HAUL_BENCH_HEAD_START_S ?? 3) * 1000
const file = process.env.HAUL_BENCH_FILE ?? benchFilePath(tmpdir(), 'random', size)
const haul = new URL('../bin/haul.js', import.meta.url).pathname
/** Hang guard for one fetch: three times the slow link's time for the file, and a minute. */
const guardMs = ((3 * size) / ((rate * 1e6) / 8)) * 1000 + 60_000

/** `haul get` of `ticket` in `ns` into `out`, to its exit: seconds from spawn. */
async function get(topo: Topology, ns: string, ticket: string, out: string): Promise<number> {
  const started = performance.now()
  const child = topo.spawn(ns, haul, ['get', ticket, '-o', out, '--json'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const guard = setTimeout(() => child.kill('SIGKILL'), guardMs)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(guard)
  if (code !== 0) throw new Error(`haul get in ${ns} exited ${code}`)
  const got = (await stat(out)).size
  if (got !== size) throw new Error(`haul get in ${ns} wrote ${got} bytes of ${size}`)
  await rm(out, { force: true })
  return (performance.now() - started) / 1000
}

await requireNetns({ shaping: true })
await ensureDataFile('random', file, size)
const work = await mkdtemp(join(tmpdir(), 'haul-bench-mixed-'))
const topo = await Topology.create()
try {
  for (const ns of ['s', 'f', 'w']) await topo.namespace(ns)
  await topo.link({ ns: 's', address: '10.231.5.1/24' }, { ns: 'f', address: '10.231.5.2/24' })
  await topo.link(
    { ns: 's', address: '10.231.6.1/24' },
    { ns: 'w', address: '10.231.6.2/24' },
    { shape: { rateMbit: rate, ...tbfFor(rate) } },
  )
  const sender = topo.spawn(
    's',
    haul,
    ['send', file, '--json', '--listen', '/ip4/0.0.0.0/tcp/0', '--data-dir', join(work, 'data')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const ticket = await firstJson(sender, (o) => (o.event === 'published' ? String(o.ticket) : undefined))
  const mib = (size / MiB).toFixed(0)
  console.log(
    `bench/mixed-links: ${mib} MiB random, one haul send; receiver f on an unshaped veth, receiver w on tbf ${rate} Mbit/s, started ${headStartMs / 1000} s before f; load average ${loadavg()[0]!.toFixed(1)}`,
  )
  const alone = await get(topo, 'f', ticket, join(work, 'f-alone.bin'))
  console.log(`f alone: ${alone.toFixed(2)} s, ${(size / MiB / alone).toFixed(1)} MiB/s`)
  const slow = get(topo, 'w', ticket, join(work, 'w.bin'))
  await new Promise((r) => setTimeout(r, headStartMs))
  const beside = await get(topo, 'f', ticket, join(work, 'f-beside.bin'))
  console.log(
    `f beside w: ${beside.toFixed(2)} s, ${(size / MiB / beside).toFixed(1)} MiB/s: ${(alone / beside).toFixed(2)}x its goodput alone`,
  )
  const slowSeconds = await slow
  console.log(
    `w: ${slowSeconds.toFixed(2)} s, ${((size * 8) / 1e6 / slowSeconds).toFixed(1)} Mbit/s on its ${rate} Mbit/s link`,
  )
  sender.kill('SIGTERM')
} finally {
  await topo.teardown()
  await rm(work, { recursive: true, force: true })
}

function tbfFor(rateMbit: number): { burstBytes: number; limitBytes: number } {
  const d = tbfDefaults(rateMbit)
  return { burstBytes: d.burst, limitBytes: d.limit }
}
