import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Engine, engineInternals } from '../../src/engine/engine.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually, sleep } from '../support/wait.ts'
import { dialNew, noisePeer } from './support/connections-attack.ts'

const MiB = 1024 * 1024
const PER_ADDRESS = 6
const PER_PEER = 4
const GRACE_MS = 2_000

/**
 * Real Noise-speaking peers (their own keys) against an engine with small caps; the attackers
 * leave from their own loopback addresses, the legitimate receiver from 127.0.0.1.
 */
describe('per-address and per-peer caps on inbound connections', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine | undefined
  let attackers: Libp2p[] = []
  let src: string
  let ticket: string
  let addr: string

  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await Engine.create({
      workers: 1,
      network: {
        admission: {
          maxConnectionsPerAddress: PER_ADDRESS,
          maxPendingPerAddress: 4,
          maxConnectionsPerPeer: PER_PEER,
          newConnectionGraceMs: GRACE_MS,
        },
      },
    })
    src = join(dir, 'f.src')
    await writeFile(src, 4 * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
    addr = sender.addresses[0]!
  })
  afterEach(async () => {
    await Promise.all(attackers.map((a) => a.stop()))
    attackers = []
    await receiver?.stop()
    receiver = undefined
    await sender.stop()
    await cleanup()
  })

  async function fetchCompletes(): Promise<void> {
    receiver = await Engine.create({ workers: 1 })
    const out = join(dir, 'f.out')
    await receiver.fetch(ticket, out).result
    expect(await sha256File(out)).toBe(await sha256File(src))
  }

  it('ten peers from one address: the first maxConnectionsPerAddress are kept, the rest refused; a peer from another address still fetches', async () => {
    attackers = await Promise.all(Array.from({ length: 10 }, () => noisePeer('127.0.0.2')))
    for (const a of attackers) await dialNew(a, addr)
    await eventually(
      () => sender.stats().network.admission.refusedPerAddress >= 10 - PER_ADDRESS,
      'connections over the per-address cap refused',
    )
    // Refused dials may have looked complete to the dialer for a moment (Noise finishes on its
    // side first); the server's own count is what holds.
    await eventually(
      () => sender.stats().network.connections === PER_ADDRESS,
      'only the capped connections stay',
    )
    expect(sender.stats().network.admission.evicted).toBe(0)

    await fetchCompletes()
    // The attackers' connections were not needed to make room: the cap kept the node from filling.
    expect(sender.stats().network.connections).toBeGreaterThanOrEqual(PER_ADDRESS)
  }, 60_000)

  it('one peer id: connections beyond maxConnectionsPerPeer are refused while its others are new, then replace its oldest idle one', async () => {
    const a = await noisePeer('127.0.0.3')
    attackers = [a]
    const peer = a.peerId.toString()
    for (let i = 0; i < PER_PEER; i++) expect(await dialNew(a, addr)).toBeDefined()
    await eventually(
      () => engineInternals(sender).network.connectionCount(peer) === PER_PEER,
      `${PER_PEER} connections`,
    )

    await dialNew(a, addr)
    await eventually(() => sender.stats().network.admission.refusedPerPeer === 1, 'one more refused')
    await sleep(100)
    expect(engineInternals(sender).network.connectionCount(peer)).toBe(PER_PEER)

    // Once its connections are past the grace period, a new one takes the place of the oldest.
    const open = a.getConnections().filter((c) => c.status === 'open')
    const oldest = open.sort((x, y) => x.timeline.open - y.timeline.open)[0]!
    await sleep(GRACE_MS + 100)
    await dialNew(a, addr)
    await eventually(() => sender.stats().network.admission.evicted === 1, 'the oldest idle one evicted')
    await eventually(() => oldest.status !== 'open', 'the evicted connection closed on the peer too')
    await eventually(
      () => engineInternals(sender).network.connectionCount(peer) === PER_PEER,
      `still ${PER_PEER} connections`,
    )
    expect(sender.stats().network.admission.refusedPerPeer).toBe(1)

    await fetchCompletes()
  }, 60_000)
})
