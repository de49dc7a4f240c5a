/**
 * Receivers that never read, against the serving side: their read-ahead stays within their
 * peer's share of the memory budget, so another peer's download goes on meanwhile; a stream
 * whose peer takes none of its replies is reset after `server.stallTimeoutMs` (sooner when its
 * peer holds more than its share while others wait; at the latest after the stream idle
 * timeout), however many frames the peer keeps sending, and its leases come back.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { engineDefaults } from '../../src/engine/config.ts'
import { Engine } from '../../src/engine/engine.ts'
import type { FrameStream } from '../../src/net/stream-io.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { AttackClient, sleep, type Target, targetOf } from './support/serving-attack.ts'

const MiB = 1024 * 1024
const FILE_MIB = 64
const STALL_MS = engineDefaults.server.stallTimeoutMs

/** Budget bytes that chunk work holds (idle recycled buffers aside). */
const inWork = (e: Engine): number => e.stats().memory.workBytes

async function fetchTimed(ticket: string, dest: string): Promise<number> {
  const receiver = await Engine.create({ workers: 1 })
  try {
    const t0 = performance.now()
    const r = await receiver.fetch(ticket, dest).result
    expect(r.bytes).toBe(FILE_MIB * MiB)
    return (performance.now() - t0) / 1000
  } finally {
    await receiver.stop()
  }
}

describe('never-reads attack', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let src: string
  let ticket: string
  let target: Target
  let attacker: AttackClient

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // Default limits: a 16 MiB budget, readAhead 4, stallTimeoutMs 10 s, stream idle 30 s.
    sender = await Engine.create({ workers: 1 })
    src = join(dir, 'f.src')
    await writeFile(src, FILE_MIB * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
    target = targetOf(ticket)
    attacker = await AttackClient.create()
  })
  afterAll(async () => {
    await attacker.stop()
    await sender.stop()
    await cleanup()
  })

  it('four streams that ask for the whole file and never read hold at most their share; another peer fetches meanwhile; the streams are reset after the stall bound and every lease comes back', async () => {
    // The first run warms the code up; the faster of two is the reference.
    const alone = Math.min(
      await fetchTimed(ticket, join(dir, 'alone1.out')),
      await fetchTimed(ticket, join(dir, 'alone2.out')),
    )
    const t0 = performance.now()
    const streams: FrameStream[] = []
    for (let i = 0; i < 4; i++) streams.push(await attacker.neverReads(target, FILE_MIB, 500))
    // The attack has taken what it can: its read-ahead is stuck behind a shut window.
    await expect
      .poll(() => sender.stats().serving.leasedBytes, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(8 * MiB)
    await sleep(500)
    const held = sender.stats().serving.leasedBytes
    // One peer's share is three quarters of the budget (serve-shares.ts).
    expect(held).toBeLessThanOrEqual((sender.stats().memory.limitBytes * 3) / 4)
    const attacked = await fetchTimed(ticket, join(dir, 'attacked.out'))
    expect(await sha256File(join(dir, 'attacked.out'))).toBe(await sha256File(src))
    console.log(
      `never-reads attack: legit ${FILE_MIB} MiB in ${attacked.toFixed(2)} s attacked, ${alone.toFixed(2)} s alone ` +
        `(${(alone / attacked).toFixed(2)}x); attacker held ${(held / MiB).toFixed(1)} MiB of ${sender.stats().memory.limitBytes / MiB}`,
    )
    // Generous: at least a fifth of the unattacked speed (slow machines: 5 s).
    expect(attacked).toBeLessThan(Math.max(5 * alone, 5))
    // The stall rule: cancels every 500 ms do not keep a stream whose replies are not taken.
    await expect.poll(() => streams.every((s) => s.closed), { timeout: STALL_MS + 10_000 }).toBe(true)
    const resetAfter = (performance.now() - t0) / 1000
    console.log(`never-reads attack: streams reset ${resetAfter.toFixed(1)} s after the attack began`)
    await expect.poll(() => sender.stats().serving.leasedBytes, { timeout: 5_000 }).toBe(0)
    await expect.poll(() => inWork(sender), { timeout: 5_000 }).toBe(0)
  }, 90_000)
})

describe('never-reads attack from four peer ids (each keeps its four streams coming back)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let ticket: string
  let target: Target
  const attackers: AttackClient[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // Without the chunk cache: the attackers' streams must fill the budget with their own reads,
    // which the reference fetches would otherwise have left cached for them to share.
    sender = await Engine.create({ workers: 1, serveCacheBytes: 0 })
    const src = join(dir, 'f.src')
    await writeFile(src, FILE_MIB * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
    target = targetOf(ticket)
    for (let i = 0; i < 4; i++) attackers.push(await AttackClient.create())
  })
  afterAll(async () => {
    await Promise.all(attackers.map((a) => a.stop()))
    await sender.stop()
    await cleanup()
  })

  it('the attackers hold the whole budget before the receiver arrives; it still completes well before the stall bound', async () => {
    // The first run warms the code up; the faster of two is the reference.
    const alone = Math.min(
      await fetchTimed(ticket, join(dir, 'alone1.out')),
      await fetchTimed(ticket, join(dir, 'alone2.out')),
    )
    let attacking = true
    const loops: Promise<void>[] = []
    try {
      // One after the other, so that each takes what is left while its share is still large:
      // together they hold the whole budget, and a newcomer finds no room at all.
      for (const a of attackers) {
        const before = inWork(sender)
        for (let i = 0; i < 4; i++) {
          loops.push(
            (async () => {
              while (attacking) {
                const s = await a.neverReads(target, FILE_MIB, 500).catch(() => undefined)
                while (attacking && s !== undefined && !s.closed) await sleep(50)
                if (s === undefined) await sleep(200)
              }
            })(),
          )
        }
        await expect.poll(() => inWork(sender) > before || inWork(sender) >= 15 * MiB).toBe(true)
        await sleep(300)
      }
      const held = inWork(sender)
      expect(held).toBeGreaterThanOrEqual(15 * MiB)
      const attacked = await fetchTimed(ticket, join(dir, 'attacked.out'))
      console.log(
        `never-reads attack, 4 peers: legit ${FILE_MIB} MiB in ${attacked.toFixed(2)} s attacked, ${alone.toFixed(2)} s alone ` +
          `(${(alone / attacked).toFixed(2)}x); attackers held ${(held / MiB).toFixed(0)} MiB of ${sender.stats().memory.limitBytes / MiB}`,
      )
      // Over-share stalled streams are reset after 2 s when others wait (not the 10 s stall bound).
      expect(attacked).toBeLessThan(Math.max(5 * alone, 8))
    } finally {
      attacking = false
      await Promise.race([Promise.all(loops), sleep(5_000)])
    }
  }, 90_000)
})

describe('the stream idle timeout while a reply waits', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let target: Target
  let attacker: AttackClient

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // The server's own stall rule out of the way: only the stream's idle timer is left.
    sender = await Engine.create({
      workers: 1,
      timeouts: { idleMs: 2_000 },
      server: { stallTimeoutMs: 600_000 },
    })
    const src = join(dir, 'f.src')
    await writeFile(src, 16 * MiB, 'random')
    target = targetOf((await sender.publish(src)).ticket)
    attacker = await AttackClient.create()
  })
  afterAll(async () => {
    await attacker.stop()
    await sender.stop()
    await cleanup()
  })

  it('is not re-armed by inbound frames: a stream that reads nothing but sends a cancel every 300 ms is aborted', async () => {
    const t0 = performance.now()
    const s = await attacker.neverReads(target, 16, 300)
    await expect.poll(() => s.closed, { timeout: 15_000 }).toBe(true)
    const after = (performance.now() - t0) / 1000
    expect(after).toBeGreaterThan(1.5)
    await expect.poll(() => inWork(sender), { timeout: 5_000 }).toBe(0)
  }, 30_000)
})
