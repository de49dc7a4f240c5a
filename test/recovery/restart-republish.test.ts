/**
 * A sender stopped and started again on its data folder (same peer id, port and secrets), as a
 * killed process restarted is, whose application publishes its files again a moment after the
 * engine starts. A fetch that starts while it is down waits for it when this engine heard from it
 * moments before; a fetch that asks before the content is published again is told to ask again
 * (CONTENT_PREPARING), not that the content is unknown.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentNotFoundError } from '../../src/errors.ts'
import { Engine, type EngineOptions } from '../../src/index.ts'
import { decodeSwarmTicket, encodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { failure } from '../support/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const KiB = 1024
const FIRST_CONTACT = 3
const receiving: EngineOptions = {
  workers: 1,
  retry: { maxAttemptsFirstContact: FIRST_CONTACT, baseDelayMs: 50, maxDelayMs: 200 },
}

describe('a sender restarted on its data folder, publishing again a moment later', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let receiver: Engine
  const running: Engine[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-restart-republish-'))
    receiver = await Engine.create(receiving)
  })
  afterAll(async () => {
    await Promise.all([receiver.stop(), ...running.map((e) => e.stop())])
    await cleanup()
  })

  /** A sender on `dataDir`, on loopback (the folder keeps its port); `stop` it before the next one. */
  async function sender(dataDir: string): Promise<Engine> {
    const e = await Engine.create({ workers: 1, dataDir, listen: ['/ip4/127.0.0.1/tcp/0'] })
    running.push(e)
    return e
  }
  async function stop(e: Engine): Promise<void> {
    running.splice(running.indexOf(e), 1)
    await e.stop()
  }

  it('a fetch started while it is down, from a peer this engine heard from moments before, is retried past first contact and completes', async () => {
    const data = join(dir, 'data-outage')
    const [a, b] = [join(dir, 'a.bin'), join(dir, 'b.bin')]
    await writeFile(a, 200 * KiB, 'random', 1)
    await writeFile(b, 200 * KiB, 'random', 2)
    const first = await sender(data)
    const ticketA = (await first.publish(a)).ticket
    const ticketB = (await first.publish(b)).ticket
    await receiver.fetch(ticketA, join(dir, 'a.out')).result
    await stop(first)

    // An engine that never heard from the sender takes it for absent, as at first contact.
    const stranger = await Engine.create(receiving)
    try {
      const err = await failure(stranger.fetch(ticketB, join(dir, 'b-stranger.out')).result)
      expect(err).toMatchObject({ code: 'PEER_UNREACHABLE' })
    } finally {
      await stranger.stop()
    }

    const unreachable: number[] = []
    let again: Promise<Engine> | undefined
    const r = await receiver.fetch(ticketB, join(dir, 'b.out'), {
      onRetry: (i) => {
        if (i.error.code !== 'PEER_UNREACHABLE') return
        unreachable.push(i.maxAttempts)
        // Down for more attempts than first contact allows, then back, publishing again.
        if (unreachable.length === FIRST_CONTACT + 2) {
          again = sender(data).then(async (e) => {
            await e.publish(b)
            return e
          })
        }
      },
    }).result
    expect(unreachable.length).toBeGreaterThanOrEqual(FIRST_CONTACT + 2)
    expect(unreachable.every((max) => max === Number.POSITIVE_INFINITY)).toBe(true)
    expect(r.bytes).toBe(200 * KiB)
    expect(await sha256File(join(dir, 'b.out'))).toBe(await sha256File(b))
    await stop(await again!)
  })

  it('asked for what its last run published before publishing it again: CONTENT_PREPARING, asked again, then served; only to holders of its ticket', async () => {
    const data = join(dir, 'data-republish')
    const [c, d] = [join(dir, 'c.bin'), join(dir, 'd.bin')]
    await writeFile(c, 300 * KiB, 'random', 3)
    await writeFile(d, 100 * KiB, 'random', 4)
    const first = await sender(data)
    const old = await first.publish(c)
    const revoked = await first.publish(d)
    first.unpublish(revoked.index.cid)
    await stop(first)

    const again = await sender(data)
    const t = decodeSwarmTicket(old.ticket)
    const stripped = encodeSwarmTicket({
      ...t,
      providers: t.providers.map(({ peerId, addrs }) => ({ peerId, addrs })),
    })
    // Without the secret, or for a ticket revoked by unpublish: told nothing, as for unknown content.
    expect(await failure(receiver.fetch(stripped, join(dir, 'c-stripped.out')).result)).toBeInstanceOf(
      ContentNotFoundError,
    )
    expect(await failure(receiver.fetch(revoked.ticket, join(dir, 'd.out')).result)).toBeInstanceOf(
      ContentNotFoundError,
    )

    const codes: string[] = []
    let publishing: ReturnType<Engine['publish']> | undefined
    await receiver.fetch(old.ticket, join(dir, 'c.out'), {
      onRetry: (i) => {
        codes.push(i.error.code)
        if (i.error.code === 'CONTENT_PREPARING') publishing ??= again.publish(c)
      },
    }).result
    expect(codes).toContain('CONTENT_PREPARING')
    expect(codes).not.toContain('CONTENT_NOT_FOUND')
    expect((await publishing!).ticket).toBe(old.ticket)
    expect(await sha256File(join(dir, 'c.out'))).toBe(await sha256File(c))
    await stop(again)
  })

  it('back without its data folder (another identity on its port): a fetch from a peer heard from moments before fails at first contact, naming the peer that answers there now', async () => {
    const e = join(dir, 'e.bin')
    await writeFile(e, 100 * KiB, 'random', 5)
    const first = await sender(join(dir, 'data-replaced'))
    const ticket = (await first.publish(e)).ticket
    await receiver.fetch(ticket, join(dir, 'e-first.out')).result
    const port = /\/tcp\/(\d+)/.exec(first.addresses.find((a) => a.includes('/tcp/'))!)![1]
    await stop(first)
    const other = await Engine.create({ workers: 1, listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    running.push(other)
    const maxima: number[] = []
    const err = await failure(
      receiver.fetch(ticket, join(dir, 'e.out'), { onRetry: (i) => maxima.push(i.maxAttempts) }).result,
    )
    expect(err).toMatchObject({ code: 'PEER_UNREACHABLE', answeredBy: other.peerId })
    expect(err.message).toContain(`another peer (${other.peerId}) answers there now`)
    expect(maxima.every((m) => m === FIRST_CONTACT)).toBe(true)
    await stop(other)
  })
})
