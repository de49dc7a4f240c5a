import { describe, expect, it } from 'vitest'
import { AbortedError, ConfigInvalidError, InvalidArgumentError } from '../../src/errors.ts'
import { FairQueue, type Priority } from '../../src/resources/fair-queue.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'

const KiB = 1024

/** A resource that grants at once and logs who got what, in order. */
function instant() {
  const log: number[] = []
  const q = new FairQueue<void>({ grant: async (bytes) => void log.push(bytes) })
  return { q, log }
}

/** Keeps `depth` requests of `bytes` outstanding on `flow` until `n` grants in total were made. */
async function backlog(
  flow: { take(b: number): Promise<void> },
  bytes: number,
  depth: number,
  until: () => boolean,
  count: { n: number },
) {
  const one = async (): Promise<void> => {
    while (!until()) {
      await flow.take(bytes)
      count.n += bytes
    }
  }
  await Promise.all(Array.from({ length: depth }, one))
}

describe('FairQueue', () => {
  it('divides a contended resource 4:2:1 by priority (within ±10%), whatever the request sizes', async () => {
    const { q } = instant()
    let grants = 0
    const counts: Record<Priority, { n: number }> = { high: { n: 0 }, normal: { n: 0 }, low: { n: 0 } }
    const stop = () => grants >= 3000
    const wrap = (p: Priority) => {
      const f = q.flow(p)
      return {
        take: async (b: number) => {
          await f.take(b)
          grants++
        },
      }
    }
    // Different request sizes per flow: fairness is in bytes, not in requests.
    await Promise.all([
      backlog(wrap('high'), 64 * KiB, 4, stop, counts.high),
      backlog(wrap('normal'), 256 * KiB, 2, stop, counts.normal),
      backlog(wrap('low'), 16 * KiB, 8, stop, counts.low),
    ])
    const total = counts.high.n + counts.normal.n + counts.low.n
    expect(counts.high.n / total / (4 / 7)).toBeCloseTo(1, 1)
    expect(Math.abs(counts.normal.n / total / (2 / 7) - 1)).toBeLessThan(0.1)
    expect(Math.abs(counts.low.n / total / (1 / 7) - 1)).toBeLessThan(0.1)
  })

  it('does not starve low: it is granted among the first grants even against many high flows', async () => {
    const { q, log } = instant()
    const order: string[] = []
    const highs = Array.from({ length: 8 }, () => q.flow('high'))
    const low = q.flow('low')
    const ps: Promise<void>[] = []
    for (let round = 0; round < 10; round++) {
      for (const [i, h] of highs.entries()) ps.push(h.take(1000).then(() => void order.push(`h${i}`)))
      ps.push(low.take(1000).then(() => void order.push('low')))
    }
    await Promise.all(ps)
    expect(log).toHaveLength(90)
    // 8 high flows x weight 4 against low's 1: low gets 1/33 of the bytes, so its first grant comes within ~33.
    expect(order.indexOf('low')).toBeGreaterThanOrEqual(0)
    expect(order.indexOf('low')).toBeLessThan(40)
  })

  it('an idle flow banks no credit: rejoining, it gets its share, not a burst', async () => {
    const { q } = instant()
    const a = q.flow('normal')
    const b = q.flow('normal')
    for (let i = 0; i < 100; i++) await a.take(1000) // b idle all along
    const order: string[] = []
    const ps: Promise<void>[] = []
    for (let i = 0; i < 10; i++) {
      ps.push(a.take(1000).then(() => void order.push('a')))
      ps.push(b.take(1000).then(() => void order.push('b')))
    }
    await Promise.all(ps)
    const firstTen = order.slice(0, 10)
    expect(firstTen.filter((x) => x === 'a').length).toBeGreaterThanOrEqual(4)
  })

  it('an aborted request leaves the queue; a grant that raced the abort is given back', async () => {
    const budget = new MemoryBudget({ limit: 100 })
    const q = new FairQueue({
      grant: (bytes, signal) => budget.acquire(bytes, { signal }),
      discard: (lease) => lease.release(),
    })
    const f = q.flow('low')
    const held = await f.take(100)
    const ac = new AbortController()
    const waiting = f.take(50, { signal: ac.signal })
    const behind = q.flow('high').take(60)
    ac.abort()
    await expect(waiting).rejects.toBeInstanceOf(AbortedError)
    held.release()
    const lease = await behind
    expect(budget.used).toBe(60)
    lease.release()
    expect(budget.used).toBe(0)
  })

  it('checks its options and its callers', async () => {
    expect(() => new FairQueue({ grant: async () => {}, weights: { high: 0 } })).toThrow(ConfigInvalidError)
    const { q } = instant()
    expect(() => q.flow('urgent' as Priority)).toThrow(InvalidArgumentError)
    const f = q.flow()
    f.close()
    await expect(f.take(1)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(q.flow().take(1, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError)
  })
})
