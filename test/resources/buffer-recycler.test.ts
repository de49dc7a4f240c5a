import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConfigInvalidError } from '../../src/errors.ts'
import { BufferRecycler, freeNow, HAND_OVER_MS } from '../../src/resources/buffer-recycler.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'

describe('BufferRecycler', () => {
  it('rejects a negative or fractional maxIdleBytes', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    expect(() => new BufferRecycler(budget, { maxIdleBytes: -1 })).toThrow(ConfigInvalidError)
    expect(() => new BufferRecycler(budget, { maxIdleBytes: 1.5 })).toThrow(ConfigInvalidError)
  })

  it('hands out whole-ArrayBuffer buffers and reuses a given-back one of the same size', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 500 })
    const a = r.take(100)
    expect(a.length).toBe(100)
    expect(a.byteOffset).toBe(0)
    expect(a.buffer.byteLength).toBe(100)
    expect(budget.used).toBe(0) // the taker covers a buffer in use
    r.give(a)
    expect(r.idleBytes).toBe(100)
    expect(budget.used).toBe(100) // an idle buffer holds its own lease
    const b = r.take(100)
    expect(b.buffer).toBe(a.buffer)
    expect(budget.used).toBe(0)
    expect(r.stats).toEqual({ hits: 1, misses: 1, freed: 0 })
    // Another size does not match.
    expect(r.take(99).buffer).not.toBe(a.buffer)
  })

  it('keeps a buffer that came back through a worker (new view, same memory), not a partial view', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const r = new BufferRecycler(budget)
    const a = r.take(64)
    const moved = new Uint8Array(a.buffer.transfer())
    r.give(moved.subarray(0, 10)) // may share its ArrayBuffer with bytes someone else owns
    expect(r.idleBytes).toBe(0)
    r.give(moved)
    expect(r.idleBytes).toBe(64)
    expect(r.take(64).length).toBe(64)
  })

  it('drops what does not fit: over maxIdleBytes, detached or shared', () => {
    const budget = new MemoryBudget({ limit: 300 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 250 })
    r.give(new Uint8Array(100))
    r.give(new Uint8Array(100))
    r.give(new Uint8Array(100)) // 300 > 250, and only its own size is in the way
    expect(r.idleBytes).toBe(200)
    r.give(new Uint8Array(300)) // larger than maxIdleBytes
    expect(r.idleBytes).toBe(200)
    const detached = new Uint8Array(10)
    detached.buffer.transfer()
    r.give(detached)
    r.give(new Uint8Array(new SharedArrayBuffer(10)))
    expect(r.idleBytes).toBe(200)
  })

  it('retire: keeps what give keeps, and frees the rest now (detached) instead of leaving it to the collector', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 150 })
    // A whole buffer with room: kept, memory intact.
    const kept = r.take(100)
    r.retire(kept)
    expect(kept.buffer.detached).toBe(false)
    expect(r.idleBytes).toBe(100)
    // zlib's output: a view of a longer buffer the caller owns whole. Not reusable: freed.
    const zlibOut = new Uint8Array(new ArrayBuffer(101), 0, 100)
    r.retire(zlibOut)
    expect(zlibOut.buffer.detached).toBe(true)
    expect(zlibOut.length).toBe(0)
    // Over maxIdleBytes: freed too.
    const over = new Uint8Array(100)
    r.retire(over)
    expect(over.buffer.detached).toBe(true)
    expect(r.idleBytes).toBe(100)
    expect(r.stats.freed).toBe(2)
    // After destroy nothing is kept: freed.
    r.destroy()
    const late = new Uint8Array(10)
    r.retire(late)
    expect(late.buffer.detached).toBe(true)
    // A shared or already detached buffer is left alone.
    const shared = new Uint8Array(new SharedArrayBuffer(10))
    expect(freeNow(shared)).toBe(false)
    expect(shared.length).toBe(10)
    const gone = new Uint8Array(10)
    gone.buffer.transfer()
    expect(freeNow(gone)).toBe(false)
  })

  it('gives idle memory back to a budget waiter before it would wait', async () => {
    const budget = new MemoryBudget({ limit: 300 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 300 })
    r.give(new Uint8Array(100))
    r.give(new Uint8Array(100))
    r.give(new Uint8Array(100))
    expect(budget.used).toBe(300)
    const lease = await budget.acquire(150)
    expect(r.idleBytes).toBeLessThanOrEqual(100)
    expect(budget.used).toBe(150 + r.idleBytes)
    lease.release()
  })

  it('destroy drops every idle buffer and keeps none afterwards', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const r = new BufferRecycler(budget)
    r.give(new Uint8Array(100))
    r.destroy()
    expect(budget.used).toBe(0)
    r.give(new Uint8Array(100))
    expect(r.idleBytes).toBe(0)
    expect(budget.used).toBe(0)
  })

  it('makes room for a new size by dropping the least recently given other sizes', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 300 })
    const odd = new Uint8Array(70) // a file's last chunk
    r.give(odd)
    r.give(new Uint8Array(90))
    r.give(new Uint8Array(100))
    r.give(new Uint8Array(100)) // 360 > 300: the 70 (oldest size) goes, not the new chunk-sized one
    expect(r.idleBytes).toBe(290)
    expect(budget.used).toBe(290)
    expect(r.take(70).buffer).not.toBe(odd.buffer)
    r.give(new Uint8Array(100)) // 390 > 300: the 90 goes
    expect(r.idleBytes).toBe(300)
    expect(r.take(90).length).toBe(90)
    expect(r.stats).toEqual({ hits: 0, misses: 2, freed: 0 })
  })

  describe('hand-over while the budget has no room', () => {
    afterEach(() => {
      vi.useRealTimers()
    })

    it('keeps a buffer given back while others wait, for the next taker of its size', async () => {
      const budget = new MemoryBudget({ limit: 200 })
      const r = new BufferRecycler(budget, { maxIdleBytes: 150 })
      const held = await budget.acquire(200)
      const buf = r.take(100) // covered by `held`
      const waiting = budget.acquire(100)
      r.give(buf) // no lease to be had: without hand-over it would be dropped
      expect(r.handedBytes).toBe(100)
      expect(r.idleBytes).toBe(0)
      expect(budget.used).toBe(200) // handed-over memory holds no lease
      r.give(new Uint8Array(100)) // a second one would pass maxIdleBytes: dropped
      expect(r.handedBytes).toBe(100)
      held.release()
      const lease = await waiting
      expect(r.take(100).buffer).toBe(buf.buffer) // the waiter reuses it under its own lease
      expect(r.handedBytes).toBe(0)
      lease.release()
    })

    it('hands over while the budget is spent with nobody waiting: one holder reuses its own buffers', async () => {
      // One fetch window that takes the whole budget: its next chunk reuses the last one's memory.
      const budget = new MemoryBudget({ limit: 200 })
      const r = new BufferRecycler(budget, { maxIdleBytes: 100 })
      const held = await budget.acquire(200)
      const first = r.take(100)
      r.give(first)
      expect(budget.waiting).toBe(0)
      expect(r.handedBytes).toBe(100)
      expect(budget.used).toBe(200)
      const second = r.take(100)
      expect(second.buffer).toBe(first.buffer)
      expect(r.stats).toEqual({ hits: 1, misses: 1, freed: 0 })
      r.give(second)
      r.give(new Uint8Array(100)) // past maxIdleBytes: dropped
      expect(r.handedBytes).toBe(100)
      held.release()
      r.destroy()
    })

    it('hands reclaimed idle buffers to the waiter that reclaimed them', async () => {
      const budget = new MemoryBudget({ limit: 300 })
      const r = new BufferRecycler(budget, { maxIdleBytes: 300 })
      const a = new Uint8Array(100)
      r.give(a)
      const held = await budget.acquire(200)
      const lease = await budget.acquire(100) // the idle lease is reclaimed for it
      expect(r.idleBytes).toBe(0)
      expect(r.handedBytes).toBe(100)
      expect(budget.used).toBe(300)
      expect(r.take(100).buffer).toBe(a.buffer)
      lease.release()
      held.release()
    })

    it('after HAND_OVER_MS an untaken buffer gets a lease of its own, or is dropped', async () => {
      vi.useFakeTimers()
      const budget = new MemoryBudget({ limit: 300 })
      const r = new BufferRecycler(budget, { maxIdleBytes: 300 })
      r.give(new Uint8Array(100))
      r.give(new Uint8Array(100))
      const held = await budget.acquire(100)
      const lease = await budget.acquire(200) // reclaims both idle buffers
      expect(r.handedBytes).toBe(200)
      lease.release()
      held.release()
      const third = budget.tryAcquire(200)! // leaves room for one
      vi.advanceTimersByTime(HAND_OVER_MS)
      expect(r.handedBytes).toBe(0)
      expect(r.idleBytes).toBe(100)
      expect(budget.used).toBe(300)
      third.release()
      r.destroy()
      expect(budget.used).toBe(0)
    })

    it('sweeps only hand-overs older than HAND_OVER_MS', async () => {
      vi.useFakeTimers()
      const budget = new MemoryBudget({ limit: 200 })
      const r = new BufferRecycler(budget, { maxIdleBytes: 200 })
      const held = await budget.acquire(200)
      const waiting = budget.acquire(100)
      r.give(new Uint8Array(100))
      vi.advanceTimersByTime(HAND_OVER_MS - 10)
      const young = new Uint8Array(100)
      r.give(young)
      expect(r.handedBytes).toBe(200)
      vi.advanceTimersByTime(10) // the first one expires; the budget has no room, so it is dropped
      expect(r.handedBytes).toBe(100)
      expect(r.idleBytes).toBe(0)
      held.release()
      ;(await waiting).release()
      expect(r.take(100).buffer).toBe(young.buffer)
      r.destroy()
    })
  })
})
