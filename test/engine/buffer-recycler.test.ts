import { describe, expect, it } from 'vitest'
import { BufferRecycler } from '../../src/engine/buffer-recycler.ts'
import { MemoryBudget } from '../../src/engine/memory-budget.ts'
import { ConfigInvalidError } from '../../src/errors.ts'

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
    expect(r.stats).toEqual({ hits: 1, misses: 1 })
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

  it('drops what does not fit: over maxIdleBytes, no room in the budget, detached or shared', () => {
    const budget = new MemoryBudget({ limit: 300 })
    const r = new BufferRecycler(budget, { maxIdleBytes: 250 })
    r.give(new Uint8Array(200))
    r.give(new Uint8Array(100)) // 300 > 250
    expect(r.idleBytes).toBe(200)
    const other = budget.tryAcquire(100)!
    r.give(new Uint8Array(50)) // fits maxIdleBytes, but the budget is spent
    expect(r.idleBytes).toBe(200)
    other.release()
    const detached = new Uint8Array(10)
    detached.buffer.transfer()
    r.give(detached)
    r.give(new Uint8Array(new SharedArrayBuffer(10)))
    expect(r.idleBytes).toBe(200)
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
})
