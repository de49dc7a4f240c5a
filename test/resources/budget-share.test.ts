import { describe, expect, it } from 'vitest'
import { fetchShareOf } from '../../src/engine/engine.ts'
import { AbortedError, BudgetExceededError } from '../../src/errors.ts'
import { BudgetShare } from '../../src/resources/budget-share.ts'
import { type Lease, MemoryBudget } from '../../src/resources/memory-budget.ts'
import { MiB } from '../../src/types.ts'

/** Lets every queued promise callback run (no timers involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('BudgetShare', () => {
  it('holds at most its cap, counts against the engine budget, and leaves the rest to others', async () => {
    const budget = new MemoryBudget({ limit: 100 })
    const share = new BudgetShare(budget, 75)
    expect(share.limit).toBe(75)
    const a = await share.acquire(50)
    const b = share.tryAcquire(25)!
    expect(share.used).toBe(75)
    expect(budget.used).toBe(75)
    expect(share.tryAcquire(1)).toBeUndefined()
    // Over the cap: waits in the share, not in the engine budget, so others still get the rest.
    let third: Lease | undefined
    const p = share.acquire(10).then((l) => {
      third = l
    })
    await settle()
    expect(third).toBeUndefined()
    expect(share.waiting).toBe(1)
    expect(budget.waiting).toBe(0)
    const other = budget.tryAcquire(25)
    expect(other).toBeDefined()
    a.release()
    a.release()
    await p
    expect(third!.bytes).toBe(10)
    expect(share.used).toBe(35)
    expect(budget.used).toBe(60)
    b.release()
    third!.release()
    other!.release()
    expect(share.used).toBe(0)
    expect(budget.used).toBe(0)
  })

  it('a request larger than the cap fails at once; waiters are served in order; an aborted waiter leaves the line', async () => {
    const budget = new MemoryBudget({ limit: 100 })
    const share = new BudgetShare(budget, 60)
    await expect(share.acquire(61)).rejects.toBeInstanceOf(BudgetExceededError)
    const held = await share.acquire(60)
    const order: number[] = []
    const ac = new AbortController()
    const aborted = share.acquire(20, { signal: ac.signal })
    const later = [share.acquire(30), share.acquire(30)].map((p, i) =>
      p.then((l) => {
        order.push(i)
        return l
      }),
    )
    ac.abort()
    await expect(aborted).rejects.toBeInstanceOf(AbortedError)
    expect(share.waiting).toBe(2)
    held.release()
    const leases = await Promise.all(later)
    expect(order).toEqual([0, 1])
    expect(share.used).toBe(60)
    for (const l of leases) l.release()
    expect(budget.used).toBe(0)
  })

  it('within its cap, waits in the engine budget behind earlier waiters and gives its bytes back if aborted there', async () => {
    const budget = new MemoryBudget({ limit: 100 })
    const share = new BudgetShare(budget, 75)
    const serving = await budget.acquire(90)
    const ac = new AbortController()
    const p = share.acquire(20, { signal: ac.signal })
    await settle()
    expect(budget.waiting).toBe(1)
    expect(share.used).toBe(20) // counted against the cap while it waits for the engine's room
    ac.abort()
    await expect(p).rejects.toBeInstanceOf(AbortedError)
    expect(share.used).toBe(0)
    serving.release()
    expect(budget.used).toBe(0)
  })

  it('fetches hold at most three quarters of the engine budget', () => {
    expect(fetchShareOf(16 * MiB)).toBe(12 * MiB)
    expect(fetchShareOf(4 * MiB)).toBe(3 * MiB)
  })
})
