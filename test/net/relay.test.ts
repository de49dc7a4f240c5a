import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSwarmTicket, encodeSwarmTicket } from '../../src/index.ts'
import { Network } from '../../src/net/network.ts'
import { type Relay, startRelay } from '../../src/net/relay.ts'
import { routeOf } from '../../src/transfer/transfer-types.ts'
import { useEngines } from '../support/engines.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

/** The ticket with only its relayed addresses: a receiver that cannot reach the sender directly. */
function relayedOnly(ticket: string): string {
  const t = decodeSwarmTicket(ticket)
  return encodeSwarmTicket({
    ...t,
    providers: t.providers.map((p) => ({ ...p, addrs: p.addrs.filter((a) => a.includes('/p2p-circuit')) })),
  })
}

describe('circuit relay (loopback; the namespace tests put the peers on networks without a route)', () => {
  let relay: Relay
  beforeAll(async () => {
    relay = await startRelay({ listen: LOOPBACK, maxReservations: 2 })
  })
  afterAll(async () => {
    await relay.stop()
  })
  // After the relay's hooks: afterAll hooks run last-registered first, so the engines stop before the relay.
  const engines = useEngines({ listen: LOOPBACK, workers: 1 })
  const engine = engines.engine

  it('a sender with a relay puts the relayed address last in its ticket; a receiver given only that address fetches through the relay, byte-identical, and the result says relayed', async () => {
    const sender = await engine({ relays: [relay.addresses[0]!] })
    expect(relay.reservations()).toBe(1)
    const src = join(engines.dir, 'src.bin')
    const data = randomBytes(5 * 1024 * 1024 + 17)
    await writeFile(src, data)
    const { ticket } = await sender.publish(src)
    const addrs = decodeSwarmTicket(ticket).providers[0]!.addrs
    expect(addrs.at(-1)).toBe(`${relay.addresses[0]}/p2p-circuit`)
    expect(addrs.slice(0, -1).every((a) => !a.includes('p2p-circuit'))).toBe(true)

    const receiver = await engine({})
    const r = await receiver.fetch(relayedOnly(ticket), join(engines.dir, 'relayed.bin')).result
    expect(Buffer.compare(await readFile(join(engines.dir, 'relayed.bin')), data)).toBe(0)
    expect(r.swarm?.peers[0]?.route).toBe('relayed')
    expect(routeOf(r.swarm)).toBe('relayed')

    // With the whole ticket, a fresh receiver goes direct.
    const direct = await engine({})
    const d = await direct.fetch(ticket, join(engines.dir, 'direct.bin')).result
    expect(routeOf(d.swarm)).toBe('direct')
  })

  it('refuses reservations beyond maxReservations: a sender that cannot reserve fails to start, saying the relay is full', async () => {
    await engine({ relays: [relay.addresses[0]!] })
    expect(relay.reservations()).toBe(2)
    await expect(engine({ relays: [relay.addresses[0]!] })).rejects.toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      message: expect.stringMatching(/no slot free on relay .*RESERVATION_REFUSED.*max-reservations/),
    })
  })

  it('an allow-list relay refuses other senders and takes the allowed one', async () => {
    const allowedKey = join(engines.dir, 'allowed')
    const allowed = await engine({ dataDir: allowedKey })
    const only = await startRelay({ listen: LOOPBACK, allow: [allowed.peerId] })
    try {
      await allowed.stop()
      const again = await engine({ dataDir: allowedKey, relays: [only.addresses[0]!] })
      expect(again.peerId).toBe(allowed.peerId)
      expect(only.reservations()).toBe(1)
      const outsider = await engine({ dataDir: join(engines.dir, 'outsider') })
      await outsider.stop()
      await expect(
        engine({ dataDir: join(engines.dir, 'outsider'), relays: [only.addresses[0]!] }),
      ).rejects.toMatchObject({
        code: 'PERMISSION_DENIED',
        message: expect.stringMatching(
          new RegExp(`PERMISSION_DENIED.*does not allow this peer .*allow ${outsider.peerId}`),
        ),
      })
      expect(only.reservations()).toBe(1)
    } finally {
      await only.stop()
    }
  })

  it('a relay address without the relay peer id is a configuration error', async () => {
    await expect(engine({ relays: ['/ip4/127.0.0.1/tcp/1'] })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
  })

  it('a relay that restarts (same identity and port): the peer says it lost its slot, reserves again, and is reached through it', async () => {
    const relayDir = join(engines.dir, 'restarting-relay')
    let own = await startRelay({ listen: LOOPBACK, dataDir: relayDir })
    const relayAddr = own.addresses[0]!
    const behind = await Network.create({ listen: LOOPBACK, relays: [relayAddr] })
    const dialer = await Network.create({ listen: LOOPBACK })
    const changes: string[] = []
    behind.onRelayChange((c) => changes.push(c.state))
    const relayed = (): string[] => behind.addresses.filter((a) => a.includes('/p2p-circuit'))
    const waitFor = async (ok: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 100))
      if (!ok()) throw new Error(`timed out waiting for ${what}`)
    }
    try {
      await behind.handle('/test/echo', async (stream) => {
        await stream.close()
      })
      expect(relayed()).toHaveLength(1)
      await own.stop()
      await waitFor(() => relayed().length === 0, 'the relayed address to go')
      own = await startRelay({ listen: [relayAddr.slice(0, relayAddr.indexOf('/p2p/'))], dataDir: relayDir })
      expect(own.addresses[0]).toBe(relayAddr)
      await waitFor(() => relayed().length === 1, 'the slot to be reserved again')
      expect(own.reservations()).toBe(1)
      expect(changes).toContain('lost')
      expect(changes.at(-1)).toBe('reserved')
      const stream = await dialer.openStream(behind.peerId, relayed(), '/test/echo')
      stream.abort(new Error('done'))
    } finally {
      await Promise.all([behind.stop(), dialer.stop()])
      await own.stop()
    }
  })

  it('a relayed peer pushing to one that does not read: the relay stops taking bytes after about a window per direction', async () => {
    const own = await startRelay({ listen: LOOPBACK })
    const quiet = await Network.create({ listen: LOOPBACK, relays: [own.addresses[0]!] })
    const pusher = await Network.create({ listen: LOOPBACK })
    const held = new AbortController()
    try {
      // Reads nothing: its stream pauses after its own small buffer, as a slow receiver's would.
      await quiet.handle('/test/push', async () => {
        await new Promise((resolve) => held.signal.addEventListener('abort', resolve))
      })
      const via = quiet.addresses.filter((a) => a.includes('/p2p-circuit'))
      expect(via).toHaveLength(1)
      const stream = await pusher.openStream(quiet.peerId, via, '/test/push')
      const piece = new Uint8Array(256 * 1024)
      const limit = 160 * 1024 * 1024
      let accepted = 0
      let lastProgress = Date.now()
      // Writes until 160 MiB went or nothing more is taken for a second (the circuit is full).
      const writing = (async () => {
        while (accepted < limit) {
          await stream.write([piece])
          accepted += piece.length
          lastProgress = Date.now()
        }
      })().catch(() => {})
      while (accepted < limit && Date.now() - lastProgress < 1000)
        await new Promise((r) => setTimeout(r, 100))
      // Without backpressure at the relay, all 160 MiB go into its memory. With it: the pusher's
      // window into the relay (4 MiB), what the relay holds paused (a window), the quiet peer's
      // window (up to 16 MiB) and its 1 MiB buffer.
      expect(accepted).toBeLessThan(40 * 1024 * 1024)
      stream.abort(new Error('done'))
      await writing
    } finally {
      held.abort()
      await Promise.all([quiet.stop(), pusher.stop()])
      await own.stop()
    }
  })

  it('a relay that cuts each circuit after 3 MiB: the sender stops before a chunk that would not fit, the receiver goes on over new circuits, two whole chunks each, and completes byte-identical', async () => {
    const capped = await startRelay({ listen: LOOPBACK, circuitBytes: 3 * 1024 * 1024 })
    try {
      const sender = await engine({ relays: [capped.addresses[0]!] })
      const src = join(engines.dir, 'capped.bin')
      const data = randomBytes(8 * 1024 * 1024 + 5)
      await writeFile(src, data)
      const { ticket } = await sender.publish(src)
      const receiver = await engine({ retry: { baseDelayMs: 50, maxDelayMs: 200 } })
      const why: string[] = []
      const r = await receiver.fetch(relayedOnly(ticket), join(engines.dir, 'capped-copy.bin'), {
        onRetry: (info) => why.push(info.error.code),
      }).result
      expect(Buffer.compare(await readFile(join(engines.dir, 'capped-copy.bin')), data)).toBe(0)
      // Nine 1 MiB chunks, two per 3 MiB circuit: four circuits. Each ended at the sender's word,
      // never cut by the relay mid-chunk (which loses the chunk, and could lose every one).
      expect(why).toEqual(['CIRCUIT_LIMIT', 'CIRCUIT_LIMIT', 'CIRCUIT_LIMIT'])
      expect(r.retries).toBe(3)
      expect(routeOf(r.swarm)).toBe('relayed')
    } finally {
      await capped.stop()
    }
  })

  it('a relay whose circuits carry less than one chunk: the fetch fails within its attempts, with CIRCUIT_LIMIT saying what to do', async () => {
    const tiny = await startRelay({ listen: LOOPBACK, circuitBytes: 512 * 1024 })
    try {
      const sender = await engine({ relays: [tiny.addresses[0]!] })
      const src = join(engines.dir, 'tiny-relay.bin')
      await writeFile(src, randomBytes(2 * 1024 * 1024))
      const { ticket } = await sender.publish(src)
      const receiver = await engine({ retry: { baseDelayMs: 10, maxDelayMs: 20, maxAttempts: 4 } })
      const err = await receiver
        .fetch(relayedOnly(ticket), join(engines.dir, 'tiny-relay-copy.bin'))
        .result.catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'RETRIES_EXHAUSTED', cause: { code: 'CIRCUIT_LIMIT' } })
      expect(String((err as Error).cause)).toContain('relay without a data limit')
    } finally {
      await tiny.stop()
    }
  })
})
