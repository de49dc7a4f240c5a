import { describe, expect, it } from 'vitest'
import { PackPacer, SLOW_RATIO } from '../../src/serve/pack-pacer.ts'

const A = 'a'
const CID = 'c0'

/** A pacer on a hand-moved clock; no wait here ever reaches a real timer's end. */
function pacer(idleMs = 60_000, maxWaitMs = 60_000, stuckMs = 60_000) {
  let t = 0
  const p = new PackPacer({ idleMs, maxWaitMs, stuckMs, now: () => t })
  return { p, advance: (ms: number) => (t += ms) }
}

function settled(promise: Promise<unknown>): { done: boolean } {
  const state = { done: false }
  promise.then(
    () => (state.done = true),
    () => (state.done = true),
  )
  return state
}

/** Lets every pending promise callback run. */
const flush = () => new Promise((r) => setImmediate(r))

describe('PackPacer', () => {
  it('a read a window ahead of an active receiver waits until that receiver catches up', async () => {
    const { p } = pacer()
    const signal = new AbortController().signal
    for (let i = 0; i < 4; i++) p.lent(CID, A, i)
    p.lent(CID, 'b', 0)
    // b's next chunk is 1: a, asking for 4 with a window of 3, is 3 ahead of it.
    const waiting = settled(p.pace(CID, A, 4, 3, signal))
    await flush()
    expect(waiting.done).toBe(false)
    p.lent(CID, 'b', 1)
    await flush()
    expect(waiting.done).toBe(true)
    expect(p.waits).toBe(1)
    // Within the window: no wait.
    await p.pace(CID, A, 4, 3, signal)
    expect(p.waits).toBe(1)
  })

  it('the receiver furthest behind never waits, and neither does one alone', async () => {
    const { p } = pacer()
    const signal = new AbortController().signal
    for (let i = 0; i < 10; i++) p.lent(CID, A, i)
    p.lent(CID, 'b', 0)
    await p.pace(CID, 'b', 1, 2, signal)
    await p.pace('other', A, 50, 1, signal)
    expect(p.waits).toBe(0)
  })

  it('a receiver idle for idleMs holds nobody back and keeps nothing wanted', async () => {
    const { p, advance } = pacer(1_000)
    const signal = new AbortController().signal
    p.lent(CID, 'b', 0)
    expect(p.wanted(CID, 5, A)).toBe(true)
    advance(1_001)
    expect(p.wanted(CID, 5, A)).toBe(false)
    p.lent(CID, A, 0)
    await p.pace(CID, A, 9, 2, signal)
    expect(p.waits).toBe(0)
  })

  it('a read waiting for a receiver behind goes on once that receiver turns idle, without anything moving (real clock; maxWaitMs and stuckMs a minute away)', async () => {
    const p = new PackPacer({ idleMs: 50, maxWaitMs: 60_000, stuckMs: 60_000 })
    const signal = new AbortController().signal
    for (let i = 0; i < 6; i++) p.lent(CID, A, i)
    // b got its chunk 0 and then nothing (a peer whose stream is full and never read).
    p.lent(CID, 'b', 0)
    await p.pace(CID, A, 6, 2, signal)
    expect(p.waits).toBe(1)
    expect(p.wanted(CID, 3, A)).toBe(false)
  })

  it('a receiver that keeps getting chunks but whose next one does not move for stuckMs is not waited for', async () => {
    const { p, advance } = pacer(1_000, 60_000, 1_000)
    const signal = new AbortController().signal
    for (let i = 0; i < 6; i++) p.lent(CID, A, i)
    p.lent(CID, 'b', 0)
    const waiting = settled(p.pace(CID, A, 6, 2, signal))
    await flush()
    expect(waiting.done).toBe(false)
    // b asks for chunk 0 again and again: active, but its next chunk stays 1.
    advance(600)
    p.lent(CID, 'b', 0)
    await flush()
    expect(waiting.done).toBe(false)
    advance(600)
    p.lent(CID, 'b', 0)
    await flush()
    expect(waiting.done).toBe(true)
    expect(p.wanted(CID, 3, A)).toBe(true)
  })

  it("wanted: by an active receiver that has not had the chunk, never by the asker's own", () => {
    const { p } = pacer()
    p.lent(CID, 'b', 0)
    p.lent(CID, 'b', 2)
    expect(p.wanted(CID, 1, A)).toBe(true)
    expect(p.wanted(CID, 2, A)).toBe(false)
    expect(p.wanted(CID, 0, A)).toBe(false)
    expect(p.wanted(CID, 1, 'b')).toBe(false)
    p.lent(CID, 'b', 1)
    expect(p.wanted(CID, 1, A)).toBe(false)
    expect(p.wanted(CID, 3, A)).toBe(true)
  })

  it("a receiver's later request does not wait behind its own earlier ones", async () => {
    const { p } = pacer()
    const signal = new AbortController().signal
    p.lent(CID, 'b', 0)
    p.lent(CID, A, 0)
    // a asks for 8 while its own next is 1: measured from 1, b (next 1) is not behind.
    await p.pace(CID, A, 8, 2, signal)
    expect(p.waits).toBe(0)
  })

  it('a wait ends with its session, and after maxWaitMs at most', async () => {
    const { p } = pacer(60_000, 20)
    p.lent(CID, 'b', 0)
    for (let i = 0; i < 5; i++) p.lent(CID, A, i)
    const ac = new AbortController()
    const aborted = p.pace(CID, A, 5, 2, ac.signal)
    ac.abort()
    await expect(aborted).rejects.toThrow()
    // Real time: the hand-moved clock stands still, so the wait ends by its deadline, moved here.
    const { p: q, advance } = pacer(60_000, 20)
    q.lent(CID, 'b', 0)
    for (let i = 0; i < 5; i++) q.lent(CID, A, i)
    const capped = q.pace(CID, A, 5, 2, new AbortController().signal)
    advance(21)
    q.lent(CID, A, 5)
    await capped
    expect(q.waits).toBe(1)
  })

  /**
   * Lends each peer in `rates` its next chunks (from `next`, moved on) at its rate in chunks per
   * second, together, for `ms` of the hand-moved clock.
   */
  function run(
    q: ReturnType<typeof pacer>,
    ms: number,
    rates: Record<string, number>,
    next: Record<string, number>,
  ): void {
    const due = Object.fromEntries(Object.keys(rates).map((peer) => [peer, 0]))
    for (let t = 0; t < ms; t += 10) {
      q.advance(10)
      for (const [peer, rate] of Object.entries(rates)) {
        due[peer]! += (rate * 10) / 1000
        while (due[peer]! >= 1) {
          due[peer]! -= 1
          q.p.lent(CID, peer, next[peer]!)
          next[peer]!++
        }
      }
    }
  }

  it(`a receiver behind that takes chunks at under 1/${SLOW_RATIO} of the rate of the one ahead is not waited for; one about as fast is`, async () => {
    const signal = new AbortController().signal
    // b on a slow link: 1 chunk a second against a's 20.
    const slow = pacer()
    const next = { [A]: 20, b: 0 }
    run(slow, 3_000, { [A]: 20, b: 1 }, next)
    await slow.p.pace(CID, A, next[A]!, 4, signal)
    expect(slow.p.waits).toBe(0)
    // b at 12 a second against a's 20: a waits for it.
    const near = pacer()
    const next2 = { [A]: 20, b: 0 }
    run(near, 3_000, { [A]: 20, b: 12 }, next2)
    const waiting = settled(near.p.pace(CID, A, next2[A]!, 4, signal))
    await flush()
    expect(waiting.done).toBe(false)
    expect(near.p.waits).toBe(1)
  })

  /**
   * For `ms` of `q`'s clock: b gets chunks at `bRate` a second; a at 20 when the pack lets it
   * (each of its chunks first asks the pacer, with a window of 4). Returns a's chunks.
   */
  async function race(
    q: ReturnType<typeof pacer>,
    next: Record<string, number>,
    ms: number,
    bRate: number,
  ): Promise<number> {
    const signal = new AbortController().signal
    const from = next[A]!
    let dueA = 0
    let dueB = 0
    let waiting: { done: boolean } | undefined
    for (let t = 0; t < ms; t += 10) {
      q.advance(10)
      for (dueB += bRate / 100; dueB >= 1; dueB--) q.p.lent(CID, 'b', next.b!++)
      await flush()
      if (waiting !== undefined && !waiting.done) continue
      waiting = undefined
      for (dueA += 20 / 100; dueA >= 1; dueA--) {
        const turn = settled(q.p.pace(CID, A, next[A]!, 4, signal))
        await flush()
        if (!turn.done) {
          waiting = turn
          dueA = 0
          break
        }
        q.p.lent(CID, A, next[A]!++)
      }
    }
    return next[A]! - from
  }

  it('a receiver held to the pace of one behind is let go once that one slows down (the wait does not count against its own rate)', async () => {
    const q = pacer()
    const next = { [A]: 0, b: 0 }
    // b at 12 a second is about as fast as a: a keeps within the window of it.
    await race(q, next, 4_000, 12)
    expect(next[A]! - next.b!).toBeLessThanOrEqual(8)
    // b's link slows to 4 a second: a goes on at its own rate (counting its waits, a's rate
    // would follow b's down and it would wait for b for the whole transfer).
    expect(await race(q, next, 6_000, 4)).toBeGreaterThan(80)
  })

  it('a receiver that catches up with one on a slow link is held by it only until its own rate is known', async () => {
    const q = pacer()
    // b, on a slow link (1 chunk a second), started first: it has chunks 0-2.
    const next = { [A]: 0, b: 3 }
    for (let i = 0; i < 3; i++) q.p.lent(CID, 'b', i)
    // a overtakes b, runs a window ahead of it and waits; a second on, its rate (taken over the
    // moments it ran) and b's are known, and a goes on at its own: ~80 chunks in 5 s, not ~10.
    expect(await race(q, next, 5_000, 1)).toBeGreaterThan(60)
  })
})
