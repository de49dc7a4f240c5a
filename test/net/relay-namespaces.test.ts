import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { bin, Running } from '../cli/run.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { requireNetns, Topology } from '../support/netns.ts'

const MiB = 1024 * 1024
/** Enough that a relay keeping what it forwards would show in its memory. */
const BIG = 256 * MiB + 7
const SIZE = 16 * MiB + 7
/** The relay's one address, which both sides reach (its "public" address). */
const RELAY_IP = '10.231.22.1'

/**
 * Real `haul relay`, `haul send --relay` and `haul get` processes in network namespaces where the
 * sender and the receiver cannot reach each other:
 *
 *   s ── r ── g          10.231.20.0/24, 10.231.21.0/24; r holds 10.231.22.1 on its loopback
 *                        and does not forward: s and g reach r, never each other
 *
 *   s2 ── na ── i ── nb ── g2     na and nb masquerade (nftables) what leaves toward i, the
 *                  │              "internet" router; r2 sits on it. Each side is behind its own
 *                  r2             NAT: it reaches r2 and nothing behind the other NAT.
 */
describe('haul through a relay between namespaces that cannot reach each other (real processes)', () => {
  let topo: Topology
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let big: string
  let n = 0
  const procs: Running[] = []

  const haulIn = (ns: string, args: string[]): Running => {
    const [file, ...rest] = topo.argv(ns, process.execPath, [bin, ...args])
    const p = new Running(rest, { command: file })
    procs.push(p)
    return p
  }
  /** Starts `haul relay` in `ns` on `ip`; its address and process. */
  const relay = async (ns: string, ip: string, flags: string[] = []) => {
    const p = haulIn(ns, ['relay', '--listen', `/ip4/${ip}/tcp/0`, '--json', ...flags])
    const started = await p.event('relay')
    return { p, addr: (started.addresses as string[])[0]! }
  }
  const send = async (ns: string, relayAddr: string, file = src): Promise<string> => {
    const sender = haulIn(ns, [
      'send',
      file,
      '--json',
      '--relay',
      relayAddr,
      '--data-dir',
      join(dir, `d${n++}`),
    ])
    return (await sender.event('published')).ticket as string
  }
  const get = (ns: string, ticket: string, flags: string[] = []) => {
    const out = join(dir, `copy${n++}`)
    const p = haulIn(ns, ['get', ticket, '-o', out, '--json', ...flags])
    const done = p.exited.then((code) => ({
      code,
      out,
      events: p.events,
      last: p.events.at(-1),
      why: `${p.lines.slice(-5).join('\n')}\n${p.stderr}`,
    }))
    return { p, done }
  }
  /** Peak resident memory of a process, in bytes (the kernel's high-water mark). */
  const peakRss = async (pid: number): Promise<number> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024
  }

  beforeAll(async () => {
    await requireNetns({ nat: true })
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, SIZE, 'random')
    big = join(dir, 'big.bin')
    await writeFile(big, BIG, 'random')
    topo = await Topology.create()

    for (const ns of ['s', 'r', 'g']) await topo.namespace(ns)
    await topo.link({ ns: 's', address: '10.231.20.1/24' }, { ns: 'r', address: '10.231.20.254/24' })
    await topo.link({ ns: 'g', address: '10.231.21.1/24' }, { ns: 'r', address: '10.231.21.254/24' })
    await topo.exec('r', 'ip', ['addr', 'add', `${RELAY_IP}/32`, 'dev', 'lo'])
    await topo.route('s', `${RELAY_IP}/32`, '10.231.20.254')
    await topo.route('g', `${RELAY_IP}/32`, '10.231.21.254')

    for (const ns of ['s2', 'r2', 'g2']) await topo.namespace(ns)
    for (const ns of ['i', 'na', 'nb']) await topo.namespace(ns, { forward: true })
    await topo.link({ ns: 'r2', address: '10.231.30.1/24' }, { ns: 'i', address: '10.231.30.254/24' })
    await topo.link({ ns: 'na', address: '10.231.31.1/24' }, { ns: 'i', address: '10.231.31.254/24' })
    await topo.link({ ns: 'nb', address: '10.231.32.1/24' }, { ns: 'i', address: '10.231.32.254/24' })
    await topo.link({ ns: 's2', address: '10.231.33.1/24' }, { ns: 'na', address: '10.231.33.254/24' })
    await topo.link({ ns: 'g2', address: '10.231.34.1/24' }, { ns: 'nb', address: '10.231.34.254/24' })
    for (const [ns, via] of [
      ['r2', '10.231.30.254'],
      ['na', '10.231.31.254'],
      ['nb', '10.231.32.254'],
      ['s2', '10.231.33.254'],
      ['g2', '10.231.34.254'],
    ] as const) {
      await topo.route(ns, 'default', via)
    }
    await topo.masquerade('na', 'v-i')
    await topo.masquerade('nb', 'v-i')
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(async () => {
    await topo?.teardown()
    await cleanup?.()
  })

  it('the ticket alone gets the file through the relay, byte-identical, said to be relayed; the relay holds bounded memory', async () => {
    const r = await relay('r', RELAY_IP)
    const ticket = await send('s', r.addr, big)
    const addrs = decodeSwarmTicket(ticket).providers[0]!.addrs
    expect(addrs.at(-1)).toBe(`${r.addr}/p2p-circuit`)
    const got = await get('g', ticket).done
    expect(got.code, got.why).toBe(0)
    expect(await sha256File(got.out)).toBe(await sha256File(big))
    expect(got.events.find((e) => e.event === 'route')).toMatchObject({ route: 'relayed' })
    expect(got.last).toMatchObject({ event: 'done', bytes: BIG, route: 'relayed' })
    // It forwarded 256 MiB through 4 MiB windows: its memory is its own (~150 MiB of Node and
    // libp2p, as after a 16 MiB transfer) and a circuit's windows, not what it forwarded.
    const peak = await peakRss(r.p.proc.pid!)
    expect(peak).toBeLessThan(200 * MiB)
  }, 120_000)

  it('each side behind its own NAT: the transfer completes through the relay (or directly after a hole punch)', async () => {
    const r = await relay('r2', '10.231.30.1')
    const ticket = await send('s2', r.addr)
    const got = await get('g2', ticket).done
    expect(got.code, got.why).toBe(0)
    expect(await sha256File(got.out)).toBe(await sha256File(src))
    expect(['relayed', 'upgraded']).toContain(got.last?.route)
  }, 120_000)

  it('a relay at its circuit limit: a second receiver waits (TOO_MANY_REQUESTS, retried) and completes once the first one is gone', async () => {
    const r = await relay('r', RELAY_IP, ['--max-circuits', '1'])
    const ticket = await send('s', r.addr)
    // A slow first receiver holds the one circuit.
    const first = get('g', ticket, ['--max-rate', '1M'])
    await first.p.event('progress', (e) => (e.bytesDone as number) > 0)
    const second = get('g', ticket)
    const refused = await second.p.event('retry')
    expect(refused).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      message: expect.stringMatching(/no circuit free/),
    })
    first.p.kill()
    const got = await second.done
    expect(got.code, got.why).toBe(0)
    expect(await sha256File(got.out)).toBe(await sha256File(src))
  }, 120_000)

  it('a folder through the relay: every file byte-identical, the folder said to be relayed', async () => {
    const folder = join(dir, 'folder')
    await mkdir(join(folder, 'sub'), { recursive: true })
    await writeFile(join(folder, 'a.bin'), 3 * MiB + 1, 'random')
    await writeFile(join(folder, 'sub', 'b.txt'), 100_000, 'text')
    const r = await relay('r', RELAY_IP)
    const ticket = await send('s', r.addr, folder)
    const got = await get('g', ticket).done
    expect(got.code, got.why).toBe(0)
    expect(got.last).toMatchObject({ event: 'done', kind: 'collection', files: 2, route: 'relayed' })
    for (const f of ['a.bin', join('sub', 'b.txt')]) {
      expect(await sha256File(join(got.out, f))).toBe(await sha256File(join(folder, f)))
    }
  }, 120_000)
})
