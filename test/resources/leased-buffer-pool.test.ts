import { describe, expect, it } from 'vitest'
import { AbortedError, ConfigInvalidError, InvalidArgumentError } from '../../src/errors.ts'
import { HANDED_MAX, LeasedBufferPool } from '../../src/resources/leased-buffer-pool.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'

const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('LeasedBufferPool', () => {
  it('validates its configuration', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    expect(() => new LeasedBufferPool(budget, 0)).toThrow(ConfigInvalidError)
    expect(() => new LeasedBufferPool(budget, 1001)).toThrow(ConfigInvalidError)
    expect(() => new LeasedBufferPool(budget, 100, { maxIdle: -1 })).toThrow(ConfigInvalidError)
  })

  it('hands out whole-ArrayBuffer buffers under leases and reuses the same ArrayBuffer', async () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const pool = new LeasedBufferPool(budget, 100)
    const a = await pool.acquire()
    expect(a.byteLength).toBe(100)
    expect(a.byteOffset).toBe(0)
    expect(a.buffer.byteLength).toBe(100)
    expect(pool.outstanding).toBe(1)
    expect(budget.used).toBe(100)
    const ab = a.buffer
    pool.release(a)
    expect(pool.outstanding).toBe(0)
    expect(pool.idle).toBe(1)
    expect(budget.used).toBe(100) // the idle buffer keeps its lease
    const again = await pool.acquire()
    expect(again.buffer).toBe(ab)
    expect(budget.used).toBe(100)
    pool.release(again)
    pool.destroy()
    expect(budget.used).toBe(0)
  })

  it('keeps at most maxIdle buffers and releases the rest', async () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const pool = new LeasedBufferPool(budget, 100, { maxIdle: 2 })
    const bufs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()])
    expect(pool.outstanding).toBe(4)
    expect(budget.used).toBe(400)
    for (const b of bufs) pool.release(b)
    expect(pool.outstanding).toBe(0)
    expect(pool.idle).toBe(2)
    expect(budget.used).toBe(200)
    pool.trim()
    expect(pool.idle).toBe(0)
    expect(budget.used).toBe(0)
  })

  it('accepts a replacement buffer of the right size and rejects wrong ones', async () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const pool = new LeasedBufferPool(budget, 100)
    const a = await pool.acquire()
    // As if `a` went to a worker with a transfer list and a fresh array came back.
    structuredClone(a.buffer, { transfer: [a.buffer] })
    expect(() => pool.release(a)).toThrow(InvalidArgumentError) // detached: 0 bytes
    expect(() => pool.release(new Uint8Array(99))).toThrow(InvalidArgumentError)
    expect(() => pool.release(new Uint8Array(new ArrayBuffer(200), 0, 100))).toThrow(InvalidArgumentError)
    expect(() => pool.release(new Uint8Array(new SharedArrayBuffer(100)))).toThrow(InvalidArgumentError)
    expect(pool.outstanding).toBe(1)
    const replacement = new Uint8Array(100)
    pool.release(replacement) // accepted in place of `a`
    expect(pool.outstanding).toBe(0)
    expect(pool.idle).toBe(1)
    expect(await pool.acquire()).toBe(replacement)
    const other = await pool.acquire()
    pool.release(replacement)
    expect(() => pool.release(replacement)).toThrow(InvalidArgumentError) // already idle
    expect(pool.outstanding).toBe(1)
    pool.release(other)
    pool.trim()
    // A view of part of a right-size buffer is widened to the whole buffer.
    await pool.acquire()
    pool.release(new Uint8Array(new ArrayBuffer(100), 10, 20))
    const widened = await pool.acquire()
    expect(widened.byteOffset).toBe(0)
    expect(widened.byteLength).toBe(100)
    pool.release(widened)
    expect(() => pool.release(new Uint8Array(100))).toThrow(InvalidArgumentError) // nothing outstanding
    pool.destroy()
    expect(budget.used).toBe(0)
  })

  it('waits for budget, honours abort, and hands a released buffer to a waiter', async () => {
    const budget = new MemoryBudget({ limit: 200 })
    const pool = new LeasedBufferPool(budget, 100)
    const a = await pool.acquire()
    const b = await pool.acquire()
    const ac = new AbortController()
    const aborted = pool.acquire({ signal: ac.signal })
    const waiting = pool.acquire()
    await settle()
    expect(budget.waiting).toBe(2)
    ac.abort()
    await expect(aborted).rejects.toBeInstanceOf(AbortedError)
    // Someone waits for budget, so the released buffer's lease goes to them, not to idle; the
    // waiter is this pool, which reuses the buffer itself instead of allocating.
    pool.release(a)
    expect(pool.handed).toBe(1)
    const c = await waiting
    expect(c.buffer).toBe(a.buffer)
    expect(pool.handed).toBe(0)
    expect(pool.idle).toBe(0)
    expect(pool.outstanding).toBe(2)
    expect(budget.used).toBe(200)
    pool.release(b)
    pool.release(c)
    pool.destroy()
    expect(budget.used).toBe(0)
  })

  it('a buffer released while another budget user waits keeps no lease; the next acquire reuses it', async () => {
    const budget = new MemoryBudget({ limit: 300 })
    const pool = new LeasedBufferPool(budget, 100, { maxIdle: 3 })
    const bufs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()])
    const other = budget.acquire(300)
    await settle()
    for (const b of bufs) pool.release(b)
    expect(pool.handed).toBe(HANDED_MAX) // the third is dropped
    expect(pool.idle).toBe(0)
    const lease = await other
    expect(budget.used).toBe(300) // handed-over buffers hold no lease
    lease.release()
    const again = await pool.acquire()
    expect(again.buffer).toBe(bufs[1]!.buffer)
    pool.trim()
    expect(pool.handed).toBe(0)
    pool.release(again)
    pool.destroy()
    expect(budget.used).toBe(0)
  })

  it('gives idle buffers back when another budget user waits', async () => {
    const budget = new MemoryBudget({ limit: 300 })
    const pool = new LeasedBufferPool(budget, 100, { maxIdle: 3 })
    const bufs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()])
    for (const b of bufs) pool.release(b)
    expect(pool.idle).toBe(3)
    const lease = await budget.acquire(250)
    expect(pool.idle).toBe(0)
    lease.release()
    expect(budget.used).toBe(0)
    pool.destroy()
  })

  it('destroy rejects pending acquires and returns late releases to the budget', async () => {
    const budget = new MemoryBudget({ limit: 100 })
    const pool = new LeasedBufferPool(budget, 100)
    const a = await pool.acquire()
    const pending = pool.acquire()
    await settle()
    pool.destroy()
    await expect(pending).rejects.toBeInstanceOf(AbortedError)
    await expect(pool.acquire()).rejects.toBeInstanceOf(AbortedError)
    expect(budget.waiting).toBe(0)
    expect(budget.used).toBe(100)
    pool.release(a)
    expect(pool.idle).toBe(0)
    expect(budget.used).toBe(0)
  })
})

describe('LeasedBufferPool.discard', () => {
  it('returns the lease of a buffer that will never come back', async () => {
    const budget = new MemoryBudget({ limit: 4096 })
    const pool = new LeasedBufferPool(budget, 1024)
    const lost = await pool.acquire()
    structuredClone(lost.buffer, { transfer: [lost.buffer] }) // detached, as a failed worker task leaves it
    expect(budget.used).toBe(1024)
    pool.discard()
    expect(budget.used).toBe(0)
    expect(pool.outstanding).toBe(0)
    expect(() => pool.discard()).toThrow()
  })
})
