/**
 * A sender stopped and started again on its data folder (same peer id, port and secrets), as a
 * killed process restarted is, whose application publishes its files again a moment after the
 * engine starts. A fetch that starts while it is down waits for it when this engine heard from it
 * moments before.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine, type EngineOptions } from '../../src/index.ts'
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
})
