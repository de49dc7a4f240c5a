import { describe, expect, it } from 'vitest'
import { Admission, CONGESTION_WINDOW_MS } from '../../src/resources/admission.ts'

const signal = new AbortController().signal

describe('Admission adapts each peer line to its link', () => {
  it('a failed link halves how many of the peer’s transfers run (once per window); completions add one back', async () => {
    const a = new Admission({ maxActive: 64, maxActivePerPeer: 8, maxQueuedPerPeer: 100 })
    const places = await Promise.all(Array.from({ length: 8 }, () => a.acquire('p', signal)))
    expect(a.peerLimit('p')).toBe(8)
    // One cut fails every transfer on the connection at once: the line shrinks once.
    for (const p of places) p.congested()
    expect(a.peerLimit('p')).toBe(4)
    let admitted = 0
    const waiting = a.acquire('p', signal).then((p) => {
      admitted++
      return p
    })
    // Nobody running is stopped; the newcomer waits until fewer than 4 run.
    for (const p of places.slice(0, 4)) p.release()
    await Promise.resolve()
    expect(admitted).toBe(0)
    places[4]!.release()
    const next = await waiting
    expect(admitted).toBe(1)
    // Another peer's line is untouched.
    expect(a.peerLimit('q')).toBe(8)
    next.completed()
    expect(a.peerLimit('p')).toBe(5)
    for (let i = 0; i < 10; i++) next.completed()
    expect(a.peerLimit('p')).toBe(8)
    next.release()
    for (const p of places) p.release()
    expect(a.active).toBe(0)
  })

  it('never below one transfer, and shrinks again only after the window', async () => {
    const a = new Admission({ maxActive: 8, maxActivePerPeer: 4, maxQueuedPerPeer: 10 })
    const p = await a.acquire('p', signal)
    p.congested()
    expect(a.peerLimit('p')).toBe(2)
    p.congested()
    expect(a.peerLimit('p')).toBe(2)
    await new Promise((r) => setTimeout(r, CONGESTION_WINDOW_MS + 20))
    p.congested()
    expect(a.peerLimit('p')).toBe(1)
    await new Promise((r) => setTimeout(r, CONGESTION_WINDOW_MS + 20))
    p.congested()
    expect(a.peerLimit('p')).toBe(1)
    p.release()
  })
})
