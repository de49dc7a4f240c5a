/**
 * Request frames against the serving side: a frame is refused at its type byte when it announces
 * more than its type can hold, unfinished frames count against a per-peer bound, and a frame that
 * is not whole within `server.frameTimeoutMs` of its first byte closes its stream with TIMEOUT.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { engineDefaults } from '../../src/engine/config.ts'
import { Engine } from '../../src/engine/engine.ts'
import { WIRE_CODES } from '../../src/errors.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { MAX_RANGES } from '../../src/protocol/messages.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import {
  AttackClient,
  firstError,
  rssOf,
  sleep,
  spawnSender,
  type Target,
  targetOf,
  type Watched,
} from './support/serving-attack.ts'

const MiB = 1024 * 1024
const KiB = 1024

/** Waits for every stream to end, at most `ms`; returns those still open. */
async function allEnded(ws: readonly Watched[], ms: number): Promise<Watched[]> {
  await Promise.race([Promise.all(ws.map((w) => w.ended)), sleep(ms)])
  return ws.filter((w) => w.endedAt === undefined)
}

/** A get-chunks frame of the largest size a correct receiver sends (64 ranges, its secret): 1,082 bytes on the wire. */
function largestRequest(t: Target): Uint8Array {
  const ranges = Array.from({ length: MAX_RANGES }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 }))
  return Buffer.concat(
    encodeMessage({ type: 'get-chunks', requestId: 1, cid: t.cid, ranges, secret: t.secret }),
  )
}

describe('half-frame attack on a sender process', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let sender: Awaited<ReturnType<typeof spawnSender>>
  let ticket: string
  const attackers: AttackClient[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'legit.src')
    await writeFile(src, 32 * MiB, 'random')
    sender = await spawnSender(src)
    ticket = sender.ticket
    for (let i = 0; i < 4; i++) attackers.push(await AttackClient.create())
  })
  afterAll(async () => {
    await Promise.all(attackers.map((a) => a.stop()))
    await sender?.stop()
    await cleanup()
  })

  it('200 streams announcing an ~8 MiB request are refused at the type byte, the sender stays within idle + 150 MB (+ 200 MB with a legitimate fetch served meanwhile), which completes', async () => {
    const target = targetOf(ticket)
    const pid = sender.proc.pid!
    await sleep(500)
    const idle = rssOf(pid)
    let peak = idle
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid))
    }, 50)
    try {
      // Phase 1: each stream announces the whole frame limit and sends 1 MiB of it. A server
      // that buffered request frames whole held 200 MiB until each stream's idle timeout; this
      // one refuses each at its type byte and takes at most a window more of its bytes.
      const announce = engineDefaults.server.maxFrame
      const first = await Promise.all(
        attackers.flatMap((a) => Array.from({ length: 50 }, () => a.halfFrame(target, announce, MiB - 64))),
      )
      const open = await allEnded(first, 20_000)
      expect(open.length, 'streams the server left open').toBe(0)
      const codes = new Set(first.map((w) => firstError(w)?.code))
      expect([...codes]).toEqual([WIRE_CODES.FRAME_TOO_LARGE])
      const peak1 = peak
      expect(peak1 - idle).toBeLessThan(150)
      // The same fetch unattacked, then while each attacker keeps 50 half frames coming (a few
      // bytes of body each), by a receiver that has nothing to do with the attack.
      const fetchOnce = async (name: string): Promise<number> => {
        const receiver = await Engine.create({ workers: 1 })
        try {
          const t0 = performance.now()
          const r = await receiver.fetch(ticket, join(dir, name)).result
          const seconds = (performance.now() - t0) / 1000
          expect(r.bytes).toBe(32 * MiB)
          expect(await sha256File(join(dir, name))).toBe(await sha256File(src))
          return seconds
        } finally {
          await receiver.stop()
        }
      }
      const alone = await fetchOnce('alone.out')
      let attacking = true
      const loops = attackers.flatMap((a) =>
        Array.from({ length: 50 }, async () => {
          while (attacking) {
            const w = await a.halfFrame(target, announce, 11).catch(() => undefined)
            if (w === undefined) await sleep(100)
            else await Promise.race([w.ended, sleep(10_000)])
          }
        }),
      )
      let attacked: number
      try {
        await sleep(500)
        attacked = await fetchOnce('attacked.out')
      } finally {
        attacking = false
        await Promise.race([Promise.all(loops), sleep(12_000)])
      }
      console.log(
        `half-frame attack: legit 32 MiB in ${attacked.toFixed(2)} s attacked, ${alone.toFixed(2)} s alone; ` +
          `sender RSS idle ${idle.toFixed(0)} MB, peak ${peak1.toFixed(0)} MB in phase 1, ${peak.toFixed(0)} MB overall`,
      )
      // Phase 2 adds the legitimate fetch's serving (read-ahead, Noise buffers) on top of what
      // phase 1 left for the garbage collector.
      expect(peak - idle).toBeLessThan(200)
    } finally {
      clearInterval(sampler)
    }
  }, 120_000)
})

describe('unfinished request frames of a correct size', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let target: Target
  let attacker: AttackClient

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await Engine.create({ workers: 1, server: { frameTimeoutMs: 3000 } })
    const src = join(dir, 'f.src')
    await writeFile(src, 4 * MiB, 'random')
    target = targetOf((await sender.publish(src)).ticket)
    attacker = await AttackClient.create()
  })
  afterAll(async () => {
    await attacker.stop()
    await sender.stop()
    await cleanup()
  })

  it('count against the per-peer bound: 64 streams each one byte short of the largest request', async () => {
    const frame = largestRequest(target)
    const bound = engineDefaults.server.maxPartialBytesPerPeer
    let peak = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, sender.stats().serving.partialFrameBytes)
    }, 10)
    try {
      const short = frame.subarray(0, frame.length - 1)
      const ws = await Promise.all(Array.from({ length: 64 }, () => attacker.send(target, [short])))
      const open = await allEnded(ws, 15_000)
      expect(open.length, 'streams the server left open').toBe(0)
      const codes = ws.map((w) => firstError(w)?.code)
      // 60 × 1,081 bytes fit in 64 KiB; the streams past that are refused at once, the rest
      // time out once their frame has waited 3 s.
      expect(codes.filter((c) => c === WIRE_CODES.TOO_MANY_REQUESTS).length).toBeGreaterThanOrEqual(1)
      expect(codes.filter((c) => c === WIRE_CODES.TIMEOUT).length).toBeGreaterThanOrEqual(32)
      expect(codes.every((c) => c === WIRE_CODES.TOO_MANY_REQUESTS || c === WIRE_CODES.TIMEOUT)).toBe(true)
      expect(peak).toBeLessThanOrEqual(bound)
      expect(peak).toBeGreaterThan(bound / 2)
      await expect.poll(() => sender.stats().serving.partialFrameBytes, { timeout: 5000 }).toBe(0)
    } finally {
      clearInterval(sampler)
    }
  }, 60_000)

  it('slow partial frame: a get-header sent one byte every 200 ms is cut off with TIMEOUT after 3 s', async () => {
    const frame = Buffer.concat(
      encodeMessage({ type: 'get-header', requestId: 1, cid: target.cid, secret: target.secret }),
    )
    const t0 = performance.now()
    const w = await attacker.drip(target, frame, 200)
    const open = await allEnded([w], 15_000)
    expect(open.length).toBe(0)
    expect(firstError(w)).toMatchObject({ requestId: 0, code: WIRE_CODES.TIMEOUT })
    expect(w.replies.some((m) => m.type === 'header')).toBe(false)
    // Cut off by the frame timer (3 s), long before its 57 bytes were all in (11 s).
    const after = (w.errorAt! - t0) / 1000
    expect(after).toBeGreaterThan(2)
    expect(after).toBeLessThan(7.5)
  }, 30_000)

  it('a request that trickles in faster than the timeout is answered', async () => {
    const frame = Buffer.concat(
      encodeMessage({ type: 'get-header', requestId: 1, cid: target.cid, secret: target.secret }),
    )
    const w = await attacker.drip(target, frame, 10)
    await expect.poll(() => w.replies.some((m) => m.type === 'header'), { timeout: 10_000 }).toBe(true)
    expect(firstError(w)).toBeUndefined()
    await w.stream.close()
  }, 30_000)

  it('a reply type sent to a server is refused at its type byte, whatever length it announces', async () => {
    const w = await attacker.halfFrame(target, 4 * MiB, 64 * KiB, 'chunk')
    expect(await allEnded([w], 10_000)).toHaveLength(0)
    expect(firstError(w)?.code).toBe(WIRE_CODES.PROTOCOL_VIOLATION)
  }, 30_000)
})
