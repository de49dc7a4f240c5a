import { describe, expect, it } from 'vitest'
import { PackPacer } from '../../src/serve/pack-pacer.ts'

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
})
