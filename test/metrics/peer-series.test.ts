import { describe, expect, it } from 'vitest'
import { EngineMetrics } from '../../src/metrics/collect.ts'
import { OTHER_PEER, PEER_SERIES, PeerCounters } from '../../src/metrics/peer-counters.ts'
import { MetricsTally } from '../../src/metrics/tally.ts'
import { parseExposition, samples } from '../support/metrics.ts'
import { IDLE } from './idle-stats.ts'

function total(c: PeerCounters): number {
  return c.series().reduce((n, [, b]) => n + b, 0)
}

describe('per-peer series are bounded', () => {
  it('past the cap, new peers add to other; the series add up to every byte', () => {
    const c = new PeerCounters(3, 1_000, () => 0)
    for (let i = 0; i < 10; i++) c.add(`p${i}`, 100 + i)
    const series = c.series()
    expect(series.map(([p]) => p)).toEqual(['p0', 'p1', 'p2', OTHER_PEER])
    expect(total(c)).toBe(10 * 100 + 45)
    // A labelled peer keeps its series; one in other stays there.
    c.add('p1', 5)
    c.add('p7', 5)
    expect(c.series()).toContainEqual(['p1', 106])
    expect(c.series().length).toBe(4)
  })

  it('a peer idle for idleMs gives its series up to a new one; its bytes move to other', () => {
    let now = 0
    const c = new PeerCounters(2, 1_000, () => now)
    c.add('a', 10)
    c.add('b', 20)
    now = 500
    c.add('b', 1)
    c.add('c', 30)
    expect(c.series()).toEqual([
      ['a', 10],
      ['b', 21],
      [OTHER_PEER, 30],
    ])
    now = 1_000
    c.add('d', 40)
    expect(c.series()).toEqual([
      ['b', 21],
      ['d', 40],
      [OTHER_PEER, 40],
    ])
    expect(total(c)).toBe(101)
  })

  it(`the exposition has at most ${PEER_SERIES} peers plus other, with more peers than that`, async () => {
    const tally = new MetricsTally()
    const peers = PEER_SERIES * 3
    for (let i = 0; i < peers; i++) {
      tally.onServe({
        type: 'chunks-served',
        session: i,
        peerId: `peer-${i}`,
        cid: 'c',
        bytes: 1000,
        chunks: 1,
        wireBytes: 900,
        contentBytes: 1000,
      })
    }
    const metrics = new EngineMetrics({ stats: () => IDLE, tally })
    const s = parseExposition(await metrics.text())
    const sent = samples(s, 'haul_peer_sent_bytes_total')
    expect(sent.length).toBe(PEER_SERIES + 1)
    expect(s.get(`haul_peer_sent_bytes_total{peer="${OTHER_PEER}"}`)).toBe((peers - PEER_SERIES) * 1000)
    expect(sent.reduce((n, [, v]) => n + v, 0)).toBe(s.get('haul_sent_bytes_total'))
    expect(samples(s, 'haul_peer_received_bytes_total')).toEqual([
      [`haul_peer_received_bytes_total{peer="${OTHER_PEER}"}`, 0],
    ])
  })
})
