import { describe, expect, it } from 'vitest'
import { Bitset, haveRuns } from '../../src/fetch/have.ts'
import { type SchedulerOptions, SwarmScheduler } from '../../src/fetch/scheduler.ts'

const KiB = 1024
const size = () => KiB
const opts = (o: Partial<SchedulerOptions> = {}): SchedulerOptions => ({
  leafCount: 16,
  windowChunks: 4096,
  windowBytes: 64 * KiB,
  minPipelineBytes: 2 * KiB,
  endgamePeers: 2,
  maxPeerFailures: 3,
  ...o,
})
function bits(n: number, pred: (i: number) => boolean): Bitset {
  const b = new Bitset(n)
  for (let i = 0; i < n; i++) if (pred(i)) b.set(i)
  return b
}
/** Feeds `bytes` to `id` over `ms` (two arrivals, so one rate sample is taken). */
function feed(s: SwarmScheduler, id: string, i: number, bytes: number, t0: number, ms: number): void {
  s.sent(id, t0)
  s.arrived(id, i, bytes, t0 + ms)
}

describe('SwarmScheduler', () => {
  it('tieSeed: fetches of one content with partial peers about break rarity ties each in an order of its own, still rarest first; without partial peers, file order', () => {
    const orders = [1, 2, 3].map((seed) => {
      const s = new SwarmScheduler(opts({ leafCount: 64, tieSeed: seed }))
      s.addPeer('seeder', 'all')
      s.addPeer(
        'partial',
        bits(64, (i) => i >= 48),
      )
      return s.pick('seeder', 48, 1e9, size).indices
    })
    for (const o of orders) {
      // The 48 chunks only the seeder holds, rarest, all before any the partial peer has too.
      expect([...o].sort((a, b) => a - b)).toEqual(Array.from({ length: 48 }, (_, i) => i))
    }
    expect(new Set(orders.map((o) => o.join())).size).toBe(3)
    expect(orders[0]).not.toEqual(Array.from({ length: 48 }, (_, i) => i))
    const plain = new SwarmScheduler(opts({ leafCount: 8, tieSeed: 5 }))
    plain.addPeer('seeder', 'all')
    expect(plain.pick('seeder', 8, 1e9, size).indices).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('rarest first: chunks few peers hold go before common ones, then in file order', () => {
    const s = new SwarmScheduler(opts({ leafCount: 8 }))
    s.addPeer('full', 'all')
    s.addPeer(
      'p1',
      bits(8, (i) => i >= 4),
    ) // chunks 4..7 are held by two peers
    s.addPeer(
      'p2',
      bits(8, (i) => i === 6 || i === 7),
    ) // 6, 7 by three
    expect(s.pick('full', 8, 1e9, size).indices).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    const t = new SwarmScheduler(opts({ leafCount: 8 }))
    t.addPeer('full', 'all')
    t.addPeer(
      'p1',
      bits(8, (i) => i >= 4),
    )
    t.addPeer(
      'p2',
      bits(8, (i) => i === 6 || i === 7),
    )
    // p1 holds 4..7: 4 and 5 (two holders) before 6 and 7 (three).
    expect(t.pick('p1', 2, 1e9, size).indices).toEqual([4, 5])
    // p2 gets what is left of what it holds; full gets the chunks only it has, rarest first.
    expect(t.pick('p2', 4, 1e9, size).indices).toEqual([6, 7])
    expect(t.pick('full', 2, 1e9, size).indices).toEqual([0, 1])
  })

  it('never hands a partial peer a chunk it does not hold, and reports chunks nobody holds', () => {
    const s = new SwarmScheduler(opts({ leafCount: 6 }))
    s.addPeer(
      'even',
      bits(6, (i) => i % 2 === 0 && i !== 4),
    )
    s.addPeer(
      'odd',
      bits(6, (i) => i % 2 === 1),
    )
    expect(s.pick('even', 10, 1e9, size).indices).toEqual([0, 2])
    expect(s.pick('odd', 10, 1e9, size).indices).toEqual([1, 3, 5])
    expect(s.unavailable()).toBe(4)
    s.setHave(
      'even',
      bits(6, (i) => i % 2 === 0),
    )
    expect(s.unavailable()).toBeUndefined()
    expect(s.pick('even', 10, 1e9, size).indices).toEqual([4])
  })

  it('respects the byte limit but always gives at least one chunk', () => {
    const s = new SwarmScheduler(opts())
    s.addPeer('a', 'all')
    expect(s.pick('a', 8, 2.5 * KiB, size).indices).toEqual([0, 1])
    expect(s.pick('a', 8, 1, size).indices).toEqual([2])
    // A chunk whose leaf page is not at hand is skipped.
    expect(s.pick('a', 2, 1e9, (i) => (i === 3 ? undefined : KiB)).indices).toEqual([4, 5])
  })

  it("asks each chunk's size once per pick and books in flight the size it was told", () => {
    const s = new SwarmScheduler(opts())
    s.addPeer('a', 'all')
    const asked = new Map<number, number>()
    // A second answer for the same chunk would differ: booking it would skew the pipeline.
    const sizeOnce = (i: number): number => {
      const n = (asked.get(i) ?? 0) + 1
      asked.set(i, n)
      return n === 1 ? KiB : 7 * KiB
    }
    const pick = s.pick('a', 3, 1e9, sizeOnce)
    expect(pick.indices).toEqual([0, 1, 2])
    expect(pick.bytes).toBe(3 * KiB)
    expect([...asked.values()]).toEqual([1, 1, 1])
    expect(s.report('a')?.inflightBytes).toBe(3 * KiB)
  })

  it('pipelines in proportion to measured rate, with a floor for slow peers', () => {
    const s = new SwarmScheduler(opts({ windowBytes: 100 * KiB, minPipelineBytes: 4 * KiB }))
    s.addPeer('fast', 'all')
    s.addPeer('slow', 'all')
    // Unmeasured peers share equally.
    expect(s.target('fast')).toBe(50 * KiB)
    expect(s.target('slow')).toBe(50 * KiB)
    s.pick('fast', 1, 1e9, size)
    s.pick('slow', 1, 1e9, size)
    feed(s, 'fast', 0, 300 * KiB, 0, 1000) // 300 KiB/s
    feed(s, 'slow', 1, 100 * KiB, 0, 1000) // 100 KiB/s
    expect(s.target('fast')).toBe(75 * KiB)
    expect(s.target('slow')).toBe(25 * KiB)
    // Arrived but not verified yet: still counted in flight.
    expect(s.capacity('fast')).toBe(74 * KiB)
    s.addPeer('crawl', 'all')
    s.pick('crawl', 1, 1e9, size)
    feed(s, 'crawl', 2, 1 * KiB, 0, 1000)
    // The floor: half an equal share of the window (3 peers), not its tiny measured share.
    expect(s.target('crawl')).toBe(Math.floor((100 * KiB) / 6))
  })

  it('a stall costs the peer its in-flight chunks and half its rate', () => {
    const s = new SwarmScheduler(opts({ leafCount: 4 }))
    s.addPeer('a', 'all')
    s.addPeer('b', 'all')
    const got = s.pick('a', 2, 1e9, size).indices
    feed(s, 'a', got[0]!, 100 * KiB, 0, 1000)
    const before = s.report('a')!.rate
    s.stalled('a', got)
    expect(s.report('a')!.rate).toBeCloseTo(before / 2)
    expect(s.report('a')!.inflightBytes).toBe(0)
    expect(s.pick('b', 4, 1e9, size).indices).toEqual([0, 1, 2, 3])
  })

  it('endgame: the last chunks go to a second peer, the first verified copy wins', () => {
    const s = new SwarmScheduler(opts({ leafCount: 3 }))
    s.addPeer('a', 'all')
    s.addPeer('b', 'all')
    s.addPeer('c', 'all')
    expect(s.pick('a', 3, 1e9, size).indices).toEqual([0, 1, 2])
    expect(s.endgame).toBe(true)
    const dup = s.pick('b', 3, 1e9, size)
    expect(dup).toEqual({ indices: [0], bytes: KiB, duplicate: true })
    expect(s.pick('b', 3, 1e9, size).indices).toEqual([1])
    expect(s.pick('c', 3, 1e9, size).indices).toEqual([2])
    // At most endgamePeers (2) peers per chunk: nothing left for c.
    expect(s.pick('c', 3, 1e9, size).indices).toEqual([])
    // b's copy of 0 wins; a still has it in flight and must cancel.
    expect(s.arrived('b', 0, KiB, 10)).toBe(true)
    expect(s.verified('b', 0)).toEqual(['a'])
    // a's late copy is a duplicate.
    expect(s.arrived('a', 0, KiB, 20)).toBe(false)
    expect(s.duplicateBytes).toBe(KiB)
    expect(s.verified('a', 1)).toEqual(['b'])
    expect(s.verified('c', 2)).toEqual(['a'])
    expect(s.complete).toBe(true)
  })

  it('a partial peer with nothing free to give duplicates a chunk in flight elsewhere before the endgame (a slow seeder queue it can beat); a complete peer waits for the endgame', () => {
    const s = new SwarmScheduler(opts({ leafCount: 8 }))
    s.addPeer('seeder', 'all')
    s.addPeer('other-seeder', 'all')
    expect(s.pick('seeder', 2, 1e9, size).indices).toEqual([0, 1])
    s.addPeer(
      'partial',
      bits(8, (i) => i === 1),
    )
    expect(s.endgame).toBe(false)
    // Chunk 1 is the only one the partial peer holds, in flight at the seeder: a copy.
    expect(s.pick('partial', 2, 1e9, size)).toEqual({ indices: [1], bytes: KiB, duplicate: true })
    // The other complete peer still has free chunks: those, not copies.
    expect(s.pick('other-seeder', 2, 1e9, size)).toEqual({
      indices: [2, 3],
      bytes: 2 * KiB,
      duplicate: false,
    })
    // The partial peer's copy wins; the seeder's is to be cancelled.
    expect(s.verified('partial', 1)).toEqual(['seeder'])
  })

  it('endgame off with endgamePeers 1', () => {
    const s = new SwarmScheduler(opts({ leafCount: 2, endgamePeers: 1 }))
    s.addPeer('a', 'all')
    s.addPeer('b', 'all')
    s.pick('a', 2, 1e9, size)
    expect(s.pick('b', 2, 1e9, size).indices).toEqual([])
  })

  it('scoring: a corrupt chunk goes to another peer; after maxPeerFailures the peer is dropped', () => {
    const s = new SwarmScheduler(opts({ leafCount: 10, maxPeerFailures: 3 }))
    s.addPeer('bad', 'all')
    s.addPeer('good', 'all')
    expect(s.pick('bad', 3, 1e9, size).indices).toEqual([0, 1, 2])
    expect(s.corrupt('bad', 0)).toBe(false)
    // 0 is back in the pool, but not for the peer that corrupted it while another holds it.
    expect(s.pick('bad', 1, 1e9, size).indices).toEqual([3])
    expect(s.pick('good', 1, 1e9, size).indices).toEqual([0])
    expect(s.corrupt('bad', 1)).toBe(false)
    expect(s.report('bad')!.failures).toBe(2)
    expect(s.corrupt('bad', 2)).toBe(true)
    expect(s.report('bad')!.dropped).toBe(true)
    // Dropped: its other in-flight chunk (3) is released, it gets nothing more, and it stays dropped.
    expect(s.report('bad')!.inflightBytes).toBe(0)
    expect(s.pick('bad', 10, 1e9, size).indices).toEqual([])
    s.addPeer('bad', 'all')
    expect(s.isDropped('bad')).toBe(true)
    expect(s.peers()).toEqual(['good'])
    expect(s.pick('good', 10, 1e9, size).indices).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('a chunk only a failing peer holds is still asked of it again', () => {
    const s = new SwarmScheduler(opts({ leafCount: 2 }))
    s.addPeer('only', 'all')
    s.addPeer(
      'half',
      bits(2, (i) => i === 1),
    )
    s.pick('only', 1, 1e9, size)
    s.corrupt('only', 0)
    expect(s.pick('only', 1, 1e9, size).indices).toEqual([0])
  })

  it('a peer that leaves gives its chunks back and may come back', () => {
    const s = new SwarmScheduler(opts({ leafCount: 4 }))
    s.addPeer('a', 'all')
    s.addPeer('b', 'all')
    expect(s.pick('a', 2, 1e9, size).indices).toEqual([0, 1])
    s.removePeer('a')
    expect(s.peers()).toEqual(['b'])
    expect(s.pick('b', 4, 1e9, size).indices).toEqual([0, 1, 2, 3])
    s.addPeer('a', 'all')
    expect(s.peers()).toEqual(['b', 'a'])
  })

  it('the window bounds what is considered, and moves as chunks are verified', () => {
    const s = new SwarmScheduler(opts({ leafCount: 100, windowChunks: 4 }))
    s.addPeer('a', 'all')
    expect(s.pick('a', 10, 1e9, size).indices).toEqual([0, 1, 2, 3])
    expect(s.pick('a', 10, 1e9, size).indices).toEqual([])
    s.verified('a', 1)
    expect(s.low).toBe(0)
    s.verified('a', 0)
    expect(s.low).toBe(2)
    expect(s.pick('a', 10, 1e9, size).indices).toEqual([4, 5])
    s.markDone(2)
    s.markDone(3)
    expect(s.window()).toEqual({ start: 4, end: 8 })
  })

  it('haveRuns splits a bitmap into bounded runs, clipped to the content', () => {
    const runs = [...haveRuns((i) => i % 3 === 0, 10, 4, 100)]
    expect(runs).toHaveLength(1)
    expect(runs[0]!.start).toBe(4)
    expect(runs[0]!.count).toBe(6)
    const b = new Bitset(10)
    b.setRun(runs[0]!.start, runs[0]!.count, runs[0]!.bits)
    expect([...Array(10).keys()].filter((i) => b.get(i))).toEqual([6, 9])
    expect(b.count).toBe(2)
  })
})

describe('SwarmScheduler start-up', () => {
  it('peers still connecting keep their share of the window', () => {
    const s = new SwarmScheduler(opts({ windowBytes: 100 * KiB, minPipelineBytes: KiB }))
    s.expectedPeers = 4
    s.addPeer('first', 'all')
    expect(s.target('first')).toBe(25 * KiB)
  })
})
