import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'
import { type IdleCrowd, idleCrowd } from './support/connections-attack.ts'

const MiB = 1024 * 1024
const MAX = 20
/** Connections being closed to make room still count as open until their socket closes. */
const CLOSING_SLACK = 4

/**
 * `maxConnections` full of idle connections from many real peers (their own keys, Noise done),
 * each dialing again as soon as it is closed: libp2p alone refuses every newcomer at accept
 * for as long as they stay.
 */
describe('maxConnections full of idle connections from many peers', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine | undefined
  let crowd: IdleCrowd | undefined
  let src: string
  let ticket: string

  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await Engine.create({ workers: 1, network: { maxConnections: MAX } })
    src = join(dir, 'f.src')
    await writeFile(src, 8 * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
  })
  afterEach(async () => {
    await crowd?.stop()
    crowd = undefined
    await receiver?.stop()
    receiver = undefined
    await sender.stop()
    await cleanup()
  })

  it('a new peer takes the place of an idle one and completes a fetch; the node stays at maxConnections', async () => {
    crowd = await idleCrowd({
      addr: sender.addresses[0]!,
      localAddresses: ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14'],
      count: 30,
    })
    await eventually(() => sender.stats().network.connections >= MAX, 'the node full')
    const refusedBefore = sender.stats().network.admission.refusedFull
    // The ten peers left over keep knocking: while the others are new, they are turned away.
    await eventually(
      () => sender.stats().network.admission.refusedFull > refusedBefore,
      'newcomers from the crowd turned away while the node is full of new connections',
    )

    let most = 0
    const sampler = setInterval(() => {
      most = Math.max(most, sender.stats().network.connections)
    }, 20)
    try {
      receiver = await Engine.create({ workers: 1 })
      const out = join(dir, 'f.out')
      await receiver.fetch(ticket, out).result
      expect(await sha256File(out)).toBe(await sha256File(src))
    } finally {
      clearInterval(sampler)
    }
    expect(sender.stats().network.admission.evicted).toBeGreaterThan(0)
    expect(most).toBeLessThanOrEqual(MAX + CLOSING_SLACK)
    // The crowd still fills the node around the receiver: it was not let go to make room.
    expect(crowd.openConnections()).toBeGreaterThanOrEqual(MAX - 1 - CLOSING_SLACK)

    // Every socket counted per address is let go when it closes.
    await crowd.stop()
    await receiver.stop()
    await eventually(() => sender.stats().network.connections === 0, 'every connection closed')
    await eventually(() => sender.stats().network.admission.inbound === 0, 'no inbound socket counted')
    expect(sender.stats().network.admission.pending).toBe(0)
  }, 60_000)
})
