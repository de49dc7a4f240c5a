import { describe, expect, it } from 'vitest'
import {
  CACHE_ENTRY_OVERHEAD,
  type CachedChunk,
  CHUNK_STATES,
  CHUNK_TRANSITIONS,
  ChunkManager,
  type ChunkState,
} from '../../src/engine/chunk-manager.ts'
import { type Lease, MemoryBudget } from '../../src/engine/memory-budget.ts'
import { ConfigInvalidError, InternalError, InvalidArgumentError } from '../../src/errors.ts'

const HASH = 32

function chunk(payloadBytes: number, fill = 0): CachedChunk {
  return {
    codec: 'none',
    payload: new Uint8Array(payloadBytes).fill(fill),
    rawLength: payloadBytes,
    hash: new Uint8Array(HASH),
  }
}
/** Bytes one cache entry with this payload is charged. */
const charge = (payloadBytes: number) => payloadBytes + HASH + CACHE_ENTRY_OVERHEAD

describe('ChunkManager lifecycle', () => {
  it('walks the happy path and the retry path', () => {
    const m = new ChunkManager(new MemoryBudget({ limit: 1000 }))
    expect(m.state('k', 5)).toBe('pending')
    m.transition('k', 5, 'in-flight')
    m.transition('k', 5, 'pending') // failed, retry
    m.transition('k', 5, 'in-flight')
    m.transition('k', 5, 'verified')
    m.transition('k', 5, 'written')
    m.transition('k', 5, 'evicted')
    expect(m.state('k', 5)).toBe('evicted')
    expect(m.state('k', 4)).toBe('pending')
    expect(m.state('other', 5)).toBe('pending')
    expect(m.counts('k')).toEqual({ 'in-flight': 0, verified: 0, written: 0, evicted: 1 })
  })

  it('throws InternalError for every transition not in the table, leaving the state unchanged', () => {
    const m = new ChunkManager(new MemoryBudget({ limit: 1000 }))
    // A path from pending that reaches every state, to set up each `from`.
    const reach: Record<ChunkState, ChunkState[]> = {
      pending: [],
      'in-flight': ['in-flight'],
      verified: ['in-flight', 'verified'],
      written: ['in-flight', 'verified', 'written'],
      evicted: ['in-flight', 'verified', 'evicted'],
    }
    let illegal = 0
    let index = 0
    for (const from of CHUNK_STATES) {
      for (const to of CHUNK_STATES) {
        const i = index++
        for (const s of reach[from]) m.transition('k', i, s)
        expect(m.state('k', i)).toBe(from)
        if (CHUNK_TRANSITIONS[from].includes(to)) {
          m.transition('k', i, to)
          expect(m.state('k', i)).toBe(to)
        } else {
          illegal++
          expect(() => m.transition('k', i, to)).toThrow(InternalError)
          expect(m.state('k', i)).toBe(from)
        }
      }
    }
    expect(illegal).toBeGreaterThanOrEqual(15) // includes every self-transition and pending→written
    expect(() => m.transition('k', -1, 'in-flight')).toThrow(InvalidArgumentError)
    expect(() => m.transition('k', 1.5, 'in-flight')).toThrow(InvalidArgumentError)
    expect(() => m.transition('k', 0, 'bogus' as ChunkState)).toThrow(InvalidArgumentError)
  })

  it('keeps bookkeeping compact and bounded, and forget frees it', () => {
    const m = new ChunkManager(new MemoryBudget({ limit: 1000 }))
    const n = 100_000
    for (let i = 0; i < n; i++) {
      m.transition('big', i, 'in-flight')
      m.transition('big', i, 'verified')
      m.transition('big', i, 'written')
    }
    expect(m.counts('big').written).toBe(n)
    expect(m.stateBytes).toBeLessThanOrEqual(n + 4096) // about one byte per chunk
    // A far index costs one page, not an array up to it.
    const before = m.stateBytes
    m.transition('big', 9_999_999_999, 'in-flight')
    expect(m.stateBytes - before).toBeLessThanOrEqual(4096)
    expect(m.state('big', 9_999_999_999)).toBe('in-flight')
    // A page whose chunks all return to pending is freed.
    m.transition('big', 9_999_999_999, 'pending')
    expect(m.stateBytes).toBe(before)
    m.forget('big')
    expect(m.stateBytes).toBe(0)
    expect(m.state('big', 7)).toBe('pending')
  })
})

describe('ChunkManager cache', () => {
  it('validates cacheLimit, defaulting to a quarter of the budget', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    expect(new ChunkManager(budget).cacheLimit).toBe(250)
    expect(() => new ChunkManager(budget, { cacheLimit: 1001 })).toThrow(ConfigInvalidError)
    expect(() => new ChunkManager(budget, { cacheLimit: -1 })).toThrow(ConfigInvalidError)
  })

  it('evicts in least recently used order and never exceeds cacheLimit', () => {
    const budget = new MemoryBudget({ limit: 100_000 })
    const m = new ChunkManager(budget, { cacheLimit: 3 * charge(100) })
    expect(m.cachePut('k', 0, chunk(100, 0))).toBe(true)
    expect(m.cachePut('k', 1, chunk(100, 1))).toBe(true)
    expect(m.cachePut('k', 2, chunk(100, 2))).toBe(true)
    expect(m.cacheBytes).toBe(3 * charge(100))
    expect(budget.used).toBe(m.cacheBytes)
    expect(m.cacheGet('k', 0)?.payload[0]).toBe(0) // 0 is now the most recent; 1 is the oldest
    expect(m.cachePut('k', 3, chunk(100, 3))).toBe(true)
    expect(m.cacheGet('k', 1)).toBeUndefined()
    expect(m.cachePut('k', 4, chunk(100, 4))).toBe(true)
    expect(m.cacheGet('k', 2)).toBeUndefined()
    expect([0, 3, 4].map((i) => m.cacheGet('k', i)?.payload[0])).toEqual([0, 3, 4])
    // Too big for the cache at all: refused, nothing evicted.
    expect(m.cachePut('k', 9, chunk(3 * charge(100)))).toBe(false)
    expect(m.cacheSize).toBe(3)
    // A bigger entry evicts as many of the oldest as needed.
    expect(m.cachePut('k', 5, chunk(250))).toBe(true)
    expect(m.cacheGet('k', 0)).toBeUndefined()
    expect(m.cacheGet('k', 3)).toBeUndefined()
    expect(m.cacheGet('k', 4)?.payload[0]).toBe(4)
    expect(m.cacheBytes).toBeLessThanOrEqual(m.cacheLimit)
    expect(budget.used).toBe(m.cacheBytes)
  })

  it('stays within cacheLimit and the budget under a randomized mix', () => {
    const budget = new MemoryBudget({ limit: 10_000 })
    const m = new ChunkManager(budget, { cacheLimit: 4000 })
    let seed = 7
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
    const other: Lease[] = []
    for (let i = 0; i < 5000; i++) {
      const r = rand()
      const idx = Math.floor(rand() * 50)
      if (r < 0.5) m.cachePut(rand() < 0.5 ? 'a' : 'b', idx, chunk(Math.floor(rand() * 1500)))
      else if (r < 0.7) m.cacheGet('a', idx)
      else if (r < 0.8) m.evict('b', idx)
      else if (r < 0.9) {
        const l = budget.tryAcquire(Math.floor(rand() * 3000))
        if (l) other.push(l)
      } else for (const l of other.splice(0)) l.release()
      expect(m.cacheBytes).toBeLessThanOrEqual(4000)
      expect(budget.used).toBeLessThanOrEqual(10_000)
    }
    for (const l of other.splice(0)) l.release()
    expect(budget.used).toBe(m.cacheBytes)
    m.clear('a')
    m.clear('b')
    expect(m.cacheBytes).toBe(0)
    expect(budget.used).toBe(0)
  })

  it('gives memory back to a waiter through the reclaimer, oldest first', async () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const m = new ChunkManager(budget, { cacheLimit: 1000 })
    for (let i = 0; i < 4; i++) expect(m.cachePut('k', i, chunk(50))).toBe(true)
    const held = budget.tryAcquire(budget.available)!
    expect(budget.available).toBe(0)
    const lease = await budget.acquire(2 * charge(50))
    expect(m.cacheSize).toBe(2)
    expect(m.cacheGet('k', 0)).toBeUndefined()
    expect(m.cacheGet('k', 1)).toBeUndefined()
    expect(m.cacheGet('k', 2)).toBeDefined()
    // While someone waits, the cache refuses new entries rather than compete.
    const waiter = budget.acquire(budget.limit)
    expect(budget.waiting).toBe(1)
    expect(m.cacheSize).toBe(0) // reclaimed everything it could
    expect(m.cachePut('k', 9, chunk(1))).toBe(false)
    lease.release()
    held.release()
    ;(await waiter).release()
    expect(budget.used).toBe(0)
  })

  it('refuses to evict when the budget could not fit the entry anyway', () => {
    const budget = new MemoryBudget({ limit: 1000 })
    const m = new ChunkManager(budget, { cacheLimit: 500 })
    expect(m.cachePut('k', 0, chunk(100))).toBe(true)
    const held = budget.tryAcquire(budget.available)!
    expect(m.cachePut('k', 1, chunk(300))).toBe(false)
    expect(m.cacheGet('k', 0)).toBeDefined()
    held.release()
    m.clear()
    expect(budget.used).toBe(0)
  })

  it('copies views of larger buffers and the hash, keeps whole payloads', () => {
    const m = new ChunkManager(new MemoryBudget({ limit: 100_000 }))
    const big = new Uint8Array(4096).fill(7)
    const hash = big.subarray(0, 32)
    m.cachePut('k', 0, { codec: 'lz4', payload: big.subarray(100, 200), rawLength: 500, hash })
    const got = m.cacheGet('k', 0)!
    expect(got.payload.buffer.byteLength).toBe(100)
    expect(got.hash.buffer).not.toBe(big.buffer)
    expect(m.cacheBytes).toBe(charge(100))
    const whole = new Uint8Array(50)
    m.cachePut('k', 1, { codec: 'zstd', payload: whole, rawLength: 80, hash: new Uint8Array(32) })
    expect(m.cacheGet('k', 1)!.payload).toBe(whole)
    expect(() => m.cachePut('k', 2, { ...got, codec: 'brotli' as 'none' })).toThrow(InvalidArgumentError)
  })

  it('evict, replace and clear release every lease', () => {
    const budget = new MemoryBudget({ limit: 10_000 })
    const m = new ChunkManager(budget, { cacheLimit: 10_000 })
    m.cachePut('a', 0, chunk(10))
    m.cachePut('a', 0, chunk(20)) // replaces
    expect(m.cacheSize).toBe(1)
    expect(m.cacheBytes).toBe(charge(20))
    m.cachePut('a', 1, chunk(10))
    m.cachePut('b', 0, chunk(10))
    m.evict('a', 1)
    m.evict('a', 7) // absent: no-op
    expect(m.cacheSize).toBe(2)
    m.clear('a')
    expect(m.cacheGet('b', 0)).toBeDefined()
    expect(budget.used).toBe(charge(10))
    m.cachePut('a', 3, chunk(10))
    m.clear()
    expect(m.cacheSize).toBe(0)
    expect(m.cacheBytes).toBe(0)
    expect(budget.used).toBe(0)
    m.destroy()
  })
})
