import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { bin, Running } from '../cli/run.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { requireNetns, Topology } from '../support/netns.ts'

const MiB = 1024 * 1024
const SIZE = 5 * MiB + 7
/** The CLI's connect timeout: engine option timeouts.connectMs, default. */
const CONNECT_MS = 10_000
const ALL_INTERFACES = ['--listen', '/ip4/0.0.0.0/tcp/0']

/**
 * Real `haul` processes in network namespaces, so that the sender's addresses are what another
 * machine would see: a link with its own addresses (loopback is then the receiver's own), and
 * namespaces with no way to each other, where a fetch must fail with PEER_UNREACHABLE in bounded
 * time instead of hanging.
 *
 *   a ──── b            10.231.1.0/24
 *   c ── r ── d         10.231.2.0/24, 10.231.3.0/24: no routes; r does not forward
 *   e ── r ── f         10.231.4.0/24, 10.231.5.0/24: default routes via r, which drops them
 *   g ── fw ── h        10.231.6.0/24, 10.231.7.0/24: default routes via fw, which forwards
 */
describe('haul between network namespaces (real processes)', () => {
  let topo: Topology
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let n = 0
  const procs: Running[] = []

  /** `haul <args>` inside namespace `ns`, as a user there runs it. */
  const haulIn = (ns: string, args: string[]): Running => {
    const [file, ...rest] = topo.argv(ns, process.execPath, [bin, ...args])
    const p = new Running(rest, { command: file })
    procs.push(p)
    return p
  }
  const send = async (ns: string, flags: string[] = []): Promise<string> => {
    const sender = haulIn(ns, ['send', src, '--json', '--data-dir', join(dir, `data${n++}`), ...flags])
    return (await sender.event('published')).ticket as string
  }
  /** `haul get <ticket or content id>` inside `ns`, to its end: exit code, last event, where it wrote. */
  const get = async (ns: string, ticket: string, flags: string[] = []) => {
    const out = join(dir, `copy${n++}`)
    const p = haulIn(ns, ['get', ticket, '-o', out, '--json', ...flags])
    const code = await p.exited
    return { code, out, last: p.events.at(-1), why: `${p.lines.join('\n')}\n${p.stderr}` }
  }
  const addrsOf = (ticket: string): string[] => decodeSwarmTicket(ticket).providers.flatMap((p) => p.addrs)

  beforeAll(async () => {
    await requireNetns()
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, SIZE, 'random')
    topo = await Topology.create()
    for (const ns of ['a', 'b', 'c', 'd', 'e', 'f', 'r', 'g', 'h']) await topo.namespace(ns)
    await topo.namespace('fw', { forward: true })
    await topo.link({ ns: 'a', address: '10.231.1.1/24' }, { ns: 'b', address: '10.231.1.2/24' })
    const leaves = [
      ['c', 'r', 2],
      ['d', 'r', 3],
      ['e', 'r', 4],
      ['f', 'r', 5],
      ['g', 'fw', 6],
      ['h', 'fw', 7],
    ] as const
    for (const [leaf, router, net] of leaves) {
      await topo.link(
        { ns: leaf, address: `10.231.${net}.1/24` },
        { ns: router, address: `10.231.${net}.254/24` },
      )
      if (leaf !== 'c' && leaf !== 'd') await topo.route(leaf, 'default', `10.231.${net}.254`)
    }
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(async () => {
    await topo?.teardown()
    await cleanup?.()
  })

  it('the ticket of a sender started without --listen gets the file to the other side of a link', async () => {
    // Listening on every interface by default, the sender names its link address, first: the
    // receiver dials in ticket order, and loopback would be its own machine.
    const ticket = await send('a')
    expect(addrsOf(ticket)[0], addrsOf(ticket).join(' ')).toMatch(/^\/ip4\/10\.231\.1\.1\/tcp\/\d+$/)
    const got = await get('b', ticket)
    expect(got.code, got.why).toBe(0)
    expect(got.last).toMatchObject({ event: 'done', bytes: SIZE })
    expect(await sha256File(got.out)).toBe(await sha256File(src))
  })

  it('with --listen /ip4/0.0.0.0/tcp/0 the ticket names the link address first and the fetch across it is byte-identical', async () => {
    const ticket = await send('a', ALL_INTERFACES)
    expect(addrsOf(ticket)[0], addrsOf(ticket).join(' ')).toMatch(/^\/ip4\/10\.231\.1\.1\/tcp\/\d+$/)
    const got = await get('b', ticket)
    expect(got.code, got.why).toBe(0)
    expect(got.last).toMatchObject({ event: 'done', bytes: SIZE })
    expect(await sha256File(got.out)).toBe(await sha256File(src))
  })

  it('no route between the namespaces: PEER_UNREACHABLE naming the address, at once', async () => {
    const ticket = await send('c', ALL_INTERFACES)
    expect(
      addrsOf(ticket).some((a) => a.startsWith('/ip4/10.231.2.1/tcp/')),
      addrsOf(ticket).join(' '),
    ).toBe(true)
    const got = await get('d', ticket)
    expect(got.code, got.why).toBe(1)
    expect(got.last).toMatchObject({ event: 'error', code: 'PEER_UNREACHABLE' })
    expect(got.last!.message).toMatch(/cannot reach peer 12D3Koo\w+ at .*\/ip4\/10\.231\.2\.1\/tcp\/\d+/)
    expect(got.last!.message).toContain('ENETUNREACH')
  })

  it(
    'a route into a router that drops the packets: PEER_UNREACHABLE after the connect timeout, not a hang',
    async () => {
      const ticket = await send('e', ALL_INTERFACES)
      const got = await get('f', ticket)
      expect(got.code, got.why).toBe(1)
      expect(got.last).toMatchObject({ event: 'error', code: 'PEER_UNREACHABLE' })
      expect(got.last!.message).toMatch(/cannot reach peer 12D3Koo\w+ at .*\/ip4\/10\.231\.4\.1\/tcp\/\d+/)
      expect(got.last!.message).toContain(`no answer within ${CONNECT_MS} ms`)
    },
    // Hang guard only: three first-contact attempts of CONNECT_MS each, and their backoff.
    6 * CONNECT_MS,
  )

  it('the same through a router that forwards: the fetch succeeds (the failures above are the routing)', async () => {
    const ticket = await send('g', ALL_INTERFACES)
    const got = await get('h', ticket)
    expect(got.code, got.why).toBe(0)
    expect(await sha256File(got.out)).toBe(await sha256File(src))
  })

  it('on a DHT across the forwarding router: haul send --dht in one namespace, haul get <content id> --bootstrap <its link address> in the other', async () => {
    const sender = haulIn('g', ['send', src, '--json', '--dht', '--data-dir', join(dir, `data${n++}`)])
    const published = await sender.event('published')
    const link = (published.addresses as string[]).find((a) => a.startsWith('/ip4/10.231.6.1/tcp/'))
    expect(link, (published.addresses as string[]).join(' ')).toBeDefined()
    const got = await get('h', published.cid as string, ['--bootstrap', link!])
    expect(got.code, got.why).toBe(0)
    expect(got.last).toMatchObject({ event: 'done', bytes: SIZE })
    expect(await sha256File(got.out)).toBe(await sha256File(src))
  })

  it('teardown kills what still runs in its namespaces and deletes them', async () => {
    const t = await Topology.create()
    await t.namespace('x')
    await t.namespace('y')
    await t.link({ ns: 'x', address: '10.231.8.1/24' }, { ns: 'y', address: '10.231.8.2/24' })
    // It says when it runs inside the namespace (ip netns exec has entered it), then stays there.
    const sleeper = t.spawn('y', 'sh', ['-c', 'echo in; exec sleep 600'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const exited = new Promise((resolve) => sleeper.once('exit', (_, signal) => resolve(signal)))
    await new Promise((resolve) => sleeper.stdout!.once('data', resolve))
    expect(await t.pids('y')).toContain(sleeper.pid)
    await t.teardown()
    expect(await exited).toBe('SIGKILL')
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    expect(left).not.toContain(t.nameOf('x'))
    expect(left).not.toContain(t.nameOf('y'))
  })
})
