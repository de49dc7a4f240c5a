import { describe, expect, it } from 'vitest'
import {
  AbortedError,
  BudgetExceededError,
  ConfigInvalidError,
  InvalidArgumentError,
} from '../../src/errors.ts'
import { type Lease, MemoryBudget, wrapLease } from '../../src/resources/memory-budget.ts'
import { MiB } from '../../src/types.ts'
import { mulberry32 } from '../../src/util/random.ts'

/** Lets every queued promise callback run (no timers involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('MemoryBudget', () => {
  it('defaults to 16 MiB and validates options and arguments', async () => {
    const b = new MemoryBudget()
    expect(b.limit).toBe(16 * MiB)
    expect(b.available).toBe(16 * MiB)
    for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new MemoryBudget({ limit })).toThrow(ConfigInvalidError)
    }
    await expect(b.acquire(-1)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(b.acquire(0.5)).rejects.toBeInstanceOf(InvalidArgumentError)
    expect(() => b.tryAcquire(Number.NaN)).toThrow(InvalidArgumentError)
  })

  it('rejects a request larger than the limit at once, even with room', async () => {
    const b = new MemoryBudget({ limit: 100 })
    await expect(b.acquire(101)).rejects.toBeInstanceOf(BudgetExceededError)
    expect(() => b.tryAcquire(101)).toThrow(BudgetExceededError)
    expect(b.waiting).toBe(0)
    expect(b.used).toBe(0)
  })

  it('counts leases, releases idempotently and tracks the peak', async () => {
    const b = new MemoryBudget({ limit: 100 })
    const a = await b.acquire(60)
    const c = b.tryAcquire(40)!
    expect(b.used).toBe(100)
    expect(b.available).toBe(0)
    expect(b.tryAcquire(1)).toBeUndefined()
    a.release()
    a.release()
    expect(a.released).toBe(true)
    expect(b.used).toBe(40)
    c.release()
    expect(b.used).toBe(0)
    expect(b.peak).toBe(100)
  })

  it('serves waiters strictly in arrival order; a big head blocks later small ones', async () => {
    const b = new MemoryBudget({ limit: 100 })
    const first = await b.acquire(90)
    const order: string[] = []
    const leases = new Map<string, Lease>()
    const want = (name: string, bytes: number) =>
      b.acquire(bytes).then((l) => {
        order.push(name)
        leases.set(name, l)
      })
    const big = want('big', 80)
    const small1 = want('small1', 5)
    const small2 = want('small2', 5)
    await settle()
    // 10 bytes are free and the small ones would fit, but the big one came first.
    expect(order).toEqual([])
    expect(b.waiting).toBe(3)
    expect(b.tryAcquire(1)).toBeUndefined()
    first.release()
    await Promise.all([big, small1, small2])
    expect(order).toEqual(['big', 'small1', 'small2'])
    expect(b.used).toBe(90)
    expect(b.waiting).toBe(0)
    for (const l of leases.values()) l.release()
    expect(b.used).toBe(0)
  })

  it('aborting the head waiter lets the ones behind it through', async () => {
    const b = new MemoryBudget({ limit: 100 })
    const held = await b.acquire(50)
    const ac = new AbortController()
    const big = b.acquire(80, { signal: ac.signal })
    const small = b.acquire(30)
    await settle()
    expect(b.waiting).toBe(2)
    ac.abort(new Error('user cancelled'))
    const err = await big.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AbortedError)
    expect((err as AbortedError).cause).toEqual(new Error('user cancelled'))
    const lease = await small
    expect(b.used).toBe(80)
    expect(b.waiting).toBe(0)
    lease.release()
    held.release()
    expect(b.used).toBe(0)
  })

  it('rejects at once for an already aborted signal', async () => {
    const b = new MemoryBudget({ limit: 100 })
    await expect(b.acquire(1, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError)
    expect(b.used).toBe(0)
  })

  it('asks the reclaimer when a waiter does not fit, and only then', async () => {
    const b = new MemoryBudget({ limit: 100 })
    const cached: Lease[] = [await b.acquire(30), await b.acquire(30), await b.acquire(30)]
    const asked: number[] = []
    b.setReclaimer((needed) => {
      asked.push(needed)
      let freed = 0
      while (freed < needed && cached.length > 0) {
        const l = cached.shift()!
        l.release()
        freed += l.bytes
      }
      return freed
    })
    const fits = await b.acquire(10)
    expect(asked).toEqual([])
    const lease = await b.acquire(50)
    expect(asked).toEqual([50])
    expect(cached.length).toBe(1)
    expect(b.used).toBe(30 + 10 + 50)
    for (const l of [fits, lease, ...cached]) l.release()
    expect(b.used).toBe(0)
  })

  it('runs added reclaimers before the set one and survives a throwing reclaimer', async () => {
    const b = new MemoryBudget({ limit: 100 })
    const calls: string[] = []
    const pool = await b.acquire(40)
    const cache = await b.acquire(40)
    b.setReclaimer(() => {
      calls.push('cache')
      cache.release()
      return 40
    })
    const remove = b.addReclaimer(() => {
      calls.push('pool')
      pool.release()
      return 40
    })
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.message)
    process.on('warning', onWarning)
    const thrower = b.addReclaimer(() => {
      calls.push('thrower')
      throw new Error('boom')
    })
    // Needs 30 more than the 20 free: the pool alone is enough, the cache is left alone.
    const l = await b.acquire(50)
    expect(calls).toEqual(['pool'])
    expect(cache.released).toBe(false)
    remove()
    // Needs 40 more: the thrower frees nothing, then the cache gives its 40.
    const l2 = await b.acquire(50)
    expect(calls).toEqual(['pool', 'thrower', 'cache'])
    await settle()
    process.off('warning', onWarning)
    expect(warnings.some((m) => m.includes('boom'))).toBe(true)
    thrower()
    l.release()
    l2.release()
    expect(b.used).toBe(0)
  })

  it('never exceeds the limit under a randomized stress with aborts, and drains to zero', async () => {
    for (const seed of [1, 2, 3, 42]) {
      const rand = mulberry32(seed)
      const limit = 1000
      const b = new MemoryBudget({ limit })
      const held: Lease[] = []
      const controllers: AbortController[] = []
      const pending: Promise<void>[] = []
      const arrivals: number[] = []
      const grants: number[] = []
      let aborted = 0
      let granted = 0
      let nextId = 0
      // Every waiter is aborted or granted; grants follow arrival order among the granted.
      const abortedIds = new Set<number>()
      for (let step = 0; step < 2000; step++) {
        const r = rand()
        if (r < 0.45) {
          const id = nextId++
          const ac = new AbortController()
          controllers[id] = ac
          arrivals.push(id)
          const bytes = Math.floor(rand() * rand() * limit)
          pending.push(
            b.acquire(bytes, { signal: ac.signal }).then(
              (lease) => {
                granted++
                grants.push(id)
                held.push(lease)
              },
              (err: unknown) => {
                expect(err).toBeInstanceOf(AbortedError)
                aborted++
                abortedIds.add(id)
              },
            ),
          )
        } else if (r < 0.8 && held.length > 0) {
          const i = Math.floor(rand() * held.length)
          held.splice(i, 1)[0]!.release()
        } else if (r < 0.9 && controllers.length > 0) {
          controllers[Math.floor(rand() * controllers.length)]!.abort()
        } else {
          b.tryAcquire(Math.floor(rand() * 200))?.release()
        }
        expect(b.used).toBeLessThanOrEqual(limit)
        if (step % 50 === 0) await settle()
      }
      await settle()
      for (const ac of controllers) ac.abort()
      await settle()
      for (const l of held.splice(0)) l.release()
      await Promise.all(pending)
      for (const l of held.splice(0)) l.release()
      expect(granted + aborted).toBe(nextId)
      expect(aborted).toBeGreaterThan(0)
      expect(granted).toBeGreaterThan(0)
      expect(grants).toEqual(arrivals.filter((id) => !abortedIds.has(id)))
      expect(b.used).toBe(0)
      expect(b.waiting).toBe(0)
      expect(b.peak).toBeLessThanOrEqual(limit)
      expect(b.peak).toBeGreaterThan(limit / 2)
    }
  })
})

describe('wrapLease', () => {
  it('gives the inner lease back, then reports its bytes, once', () => {
    const b = new MemoryBudget({ limit: 100 })
    const inner = b.tryAcquire(40)!
    const returned: number[] = []
    const outer = wrapLease(inner, (bytes) => returned.push(bytes))
    expect(outer.bytes).toBe(40)
    expect(outer.released).toBe(false)
    outer.release()
    outer.release()
    expect(outer.released).toBe(true)
    expect(inner.released).toBe(true)
    expect(b.used).toBe(0)
    expect(returned).toEqual([40])
  })
})
