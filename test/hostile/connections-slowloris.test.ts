import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { defaultAdmissionOptions } from '../../src/net/connection-admission.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'
import { type SilentSockets, silentSockets, tcpTarget } from './support/connections-attack.ts'

const MiB = 1024 * 1024
const { upgradeTimeoutMs, maxPending, maxPendingPerAddress } = defaultAdmissionOptions
/** What a silent socket may outlive the upgrade timeout by: timers and a loaded event loop. */
const MARGIN_MS = 2_000

/**
 * Silent TCP sockets (no Noise handshake, no key) against an engine with default limits. With
 * libp2p's own limits, ten of them (its pending limit), renewed, hold every newcomer out for
 * the whole 10 s upgrade timeout each.
 */
describe('slowloris: silent sockets do not lock a legitimate receiver out', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine | undefined
  let attack: SilentSockets | undefined
  let src: string
  let ticket: string

  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    // On loopback, so the receiver dials from the address the silent sockets come from.
    sender = await Engine.create({ workers: 1, listen: ['/ip4/127.0.0.1/tcp/0'] })
    src = join(dir, 'f.src')
    await writeFile(src, 16 * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
  })
  afterEach(async () => {
    attack?.stop()
    attack = undefined
    await receiver?.stop()
    receiver = undefined
    await sender.stop()
    await cleanup()
  })

  it('50 silent sockets from five addresses, renewed as closed: a fetch completes, and each socket is closed within the upgrade timeout', async () => {
    attack = silentSockets({
      target: tcpTarget(sender.addresses),
      localAddresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'],
      perAddress: 10,
    })
    // All 50 are held in their handshake at once: far more than libp2p's default of 10.
    await eventually(() => sender.stats().network.admission.pending >= 50, '50 pending sockets')

    receiver = await Engine.create({ workers: 1 })
    const out = join(dir, 'f.out')
    // The attack is on all along: most of the time the server holds nearly all 50 (a batch that
    // was closed together is replaced 50 ms later).
    const samples: number[] = [sender.stats().network.admission.pending]
    const sampler = setInterval(() => samples.push(sender.stats().network.admission.pending), 10)
    const t0 = Date.now()
    try {
      await receiver.fetch(ticket, out).result
    } finally {
      clearInterval(sampler)
    }
    const fetchMs = Date.now() - t0
    expect(await sha256File(out)).toBe(await sha256File(src))
    expect(samples.filter((n) => n >= 40).length / samples.length).toBeGreaterThanOrEqual(0.5)

    // Every socket is cut by the server, the first ones `upgradeTimeoutMs` after they connected.
    await eventually(() => attack!.lifetimes.length >= 50, '50 silent sockets closed', upgradeTimeoutMs * 3)
    expect(Math.max(...attack.lifetimes)).toBeLessThanOrEqual(upgradeTimeoutMs + MARGIN_MS)
    expect(Math.min(...attack.lifetimes.slice(0, 50))).toBeGreaterThanOrEqual(upgradeTimeoutMs - 100)
    expect(fetchMs).toBeLessThan(upgradeTimeoutMs * 5)
  }, 60_000)

  it('50 silent sockets from one address: it holds at most maxPendingPerAddress, the rest are closed at once', async () => {
    attack = silentSockets({
      target: tcpTarget(sender.addresses),
      localAddresses: ['127.0.0.2'],
      perAddress: 50,
      renewAfterMs: 100,
    })
    // Over the cap, a socket is refused at accept, or (past pendingGraceMs) replaces the
    // address's oldest one: either way one socket is closed at once per socket over the cap.
    const turnedAway = (): number => {
      const a = sender.stats().network.admission
      return a.refusedPendingPerAddress + a.replacedPending
    }
    await eventually(
      () => turnedAway() >= 50 - maxPendingPerAddress,
      'sockets over the per-address pending cap',
    )
    expect(sender.stats().network.admission.pending).toBeLessThanOrEqual(maxPendingPerAddress)
    // Closed on accept, not after the upgrade timeout (seen from the attacker, whose close events
    // arrive a little after the server counted them).
    const closedEarly = (): number => attack!.lifetimes.filter((ms) => ms < upgradeTimeoutMs / 2).length
    await eventually(() => closedEarly() >= 50 - maxPendingPerAddress, 'sockets closed at once')

    receiver = await Engine.create({ workers: 1 })
    const out = join(dir, 'f.out')
    await receiver.fetch(ticket, out).result
    expect(await sha256File(out)).toBe(await sha256File(src))
    expect(sender.stats().network.admission.pending).toBeLessThanOrEqual(maxPendingPerAddress)
  }, 60_000)

  it('maxPendingPerAddress silent sockets from each of nine addresses, more than maxPending in all, renewed as closed: a receiver from another address finds a slot, and the fetch completes', async () => {
    const addresses = Array.from({ length: 9 }, (_, i) => `127.0.0.${i + 2}`)
    // Each address stays within its own cap; together they ask for more than the node's.
    expect(addresses.length * maxPendingPerAddress).toBeGreaterThan(maxPending)
    attack = silentSockets({
      target: tcpTarget(sender.addresses),
      localAddresses: addresses,
      perAddress: maxPendingPerAddress,
    })
    await eventually(() => sender.stats().network.admission.pending >= maxPending, 'every pending slot held')

    // The receiver dials from 127.0.0.1, an address holding no pending socket: it takes a slot
    // from one of the addresses holding the most, instead of being closed at accept.
    receiver = await Engine.create({ workers: 1 })
    const out = join(dir, 'f.out')
    const samples: number[] = [sender.stats().network.admission.pending]
    const sampler = setInterval(() => samples.push(sender.stats().network.admission.pending), 10)
    try {
      await receiver.fetch(ticket, out).result
    } finally {
      clearInterval(sampler)
    }
    expect(await sha256File(out)).toBe(await sha256File(src))
    expect(Math.max(...samples)).toBeLessThanOrEqual(maxPending)
    // The attack held (nearly) every slot all along.
    expect(
      samples.filter((n) => n >= maxPending - maxPendingPerAddress).length / samples.length,
    ).toBeGreaterThanOrEqual(0.5)
    expect(sender.stats().network.admission.displacedPending).toBeGreaterThan(0)
  }, 60_000)

  // Under maxNewPerAddressPerSecond: faster than that, libp2p refuses every new socket from
  // the address, the receiver's too (README, "What a hostile peer can do").
  it("24 silent sockets from the receiver's own address, renewed as closed: the oldest make room for newcomers, and the fetch completes", async () => {
    attack = silentSockets({
      target: tcpTarget(sender.addresses),
      localAddresses: ['127.0.0.1'],
      perAddress: 24,
      renewAfterMs: 500,
    })
    await eventually(
      () => sender.stats().network.admission.pending >= maxPendingPerAddress,
      'the address at its pending cap',
    )
    receiver = await Engine.create({ workers: 1 })
    const out = join(dir, 'f.out')
    await receiver.fetch(ticket, out).result
    expect(await sha256File(out)).toBe(await sha256File(src))
    const stats = sender.stats().network.admission
    expect(stats.replacedPending).toBeGreaterThan(0)
    expect(stats.pending).toBeLessThanOrEqual(maxPendingPerAddress)
  }, 60_000)
})
