import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PeerProcess, spawnPeer } from '../support/children.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { requireNetns, Topology } from '../support/netns.ts'

const MiB = 1024 * 1024
/** 0.5 Mbit/s: a yamux frame of the first 256 KiB window takes 4.2 s on it. */
const RATE_MBIT = 0.5
/** The sender resets a stream whose peer takes none of its bytes this long: shorter than one frame. */
const STALL_MS = 2_000

/**
 * A slow link between two namespaces, each end's egress through tbf, and a sender whose stall
 * bound is shorter than the time one window's frame takes on it. A yamux data frame is as large
 * as the window and the peer grants more only once a whole frame arrived, so the sender's stream
 * itself sends nothing for that time while the link carries its bytes: it must not be taken for
 * a peer that stopped reading. The connections must not be cut for being slow either.
 */
describe('a transfer over a slow link (real processes in network namespaces)', () => {
  let topo: Topology
  let dir: string
  let cleanup: () => Promise<void>
  const peers: PeerProcess[] = []

  beforeAll(async () => {
    await requireNetns({ shaping: true })
    ;({ dir, cleanup } = await tempDir())
    topo = await Topology.create()
    await topo.namespace('s')
    await topo.namespace('r')
    // A small bucket and queue: what is in flight is the link's, not tbf's.
    const shape = { rateMbit: RATE_MBIT, burstBytes: 4 * 1024, limitBytes: 16 * 1024 }
    await topo.link({ ns: 's', address: '10.231.8.1/24' }, { ns: 'r', address: '10.231.8.2/24' }, { shape })
  })
  afterAll(async () => {
    for (const p of peers) p.proc.kill('SIGKILL')
    await topo?.teardown()
    await cleanup?.()
  })

  it('a file larger than several windows arrives whole with no retry, the sender stall bound shorter than a frame', async () => {
    const src = join(dir, 'data.bin')
    await writeFile(src, MiB + 4321, 'random')
    // The shortest bound: pings every 1.7 s, the connection judged alive on what the link moves.
    const timeouts = { deadConnectionMs: 5_000 }
    const sender = spawnPeer(
      {
        mode: 'send',
        file: src,
        engine: { listen: ['/ip4/10.231.8.1/tcp/0'], timeouts, server: { stallTimeoutMs: STALL_MS } },
      },
      { argv: (c, a) => topo.argv('s', c, a) },
    )
    peers.push(sender)
    const { ticket } = await sender.waitFor((e) => e.event === 'published', 'published')
    const dest = join(dir, 'copy.bin')
    const receiver = spawnPeer(
      { mode: 'get', ticket, dest, engine: { listen: ['/ip4/10.231.8.2/tcp/0'], timeouts } },
      { argv: (c, a) => topo.argv('r', c, a) },
    )
    peers.push(receiver)
    // 1 MiB takes ~17 s on this link: far longer means the transfer is stuck; say where.
    const stuck = setTimeout(() => receiver.proc.kill('SIGKILL'), 90_000)
    const end = await receiver
      .waitFor((e) => e.event === 'done' || e.event === 'error', 'its end')
      .finally(() => clearTimeout(stuck))
      .catch((err: Error) => {
        throw new Error(`${err.message}\nreceiver events: ${JSON.stringify(receiver.events).slice(-3000)}`)
      })
    const retries = receiver.events.filter((e) => e.event === 'retry')
    expect(end, receiver.stderr()).toMatchObject({ event: 'done' })
    expect(retries, JSON.stringify(retries)).toEqual([])
    expect(await sha256File(dest)).toBe(await sha256File(src))
    // The first chunk takes ~17 s: its bytes show arriving before it is whole, growing.
    const arriving = receiver.events
      .filter((e) => e.event === 'progress' && e.chunksDone === 0)
      .map((e) => Number(e.bytesArriving))
      .filter((n) => n > 0)
    expect(arriving.length, JSON.stringify(receiver.events.slice(0, 20))).toBeGreaterThanOrEqual(2)
    expect(arriving.at(-1)).toBeGreaterThan(arriving[0]!)
  }, 120_000)
})
