import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { EngineMetrics } from '../../src/metrics/collect.ts'
import { PEER_IDLE_MS, PEER_SERIES } from '../../src/metrics/peer-counters.ts'
import { MAX_SCRAPES, MAX_SOCKETS } from '../../src/metrics/server.ts'
import { MetricsTally } from '../../src/metrics/tally.ts'
import { IDLE } from './idle-stats.ts'

const doc = await readFile(new URL('../../docs/METRICS.md', import.meta.url), 'utf8')

describe('docs/METRICS.md', () => {
  it('lists every metric the endpoint serves, and no other', () => {
    const metrics = new EngineMetrics({ stats: () => IDLE, tally: new MetricsTally() })
    const served = metrics.registry.getMetricsAsArray().map((m) => m.name)
    const documented = [...doc.matchAll(/^\| `(haul_\w+)` \|/gm)].map((m) => m[1])
    expect(new Set(documented).size).toBe(documented.length)
    expect([...documented].sort()).toEqual([...served].sort())
    for (const name of served) expect(name).toMatch(/^haul_[a-z_]+$/)
  })

  it('states the bounds the code has', () => {
    expect(doc).toContain(`at most **${PEER_SERIES} peers per direction**`)
    expect(doc).toContain(`no bytes for ${PEER_IDLE_MS / 1000} s`)
    expect(doc).toContain(`At most ${MAX_SCRAPES} scrapes`)
    expect(doc).toContain(`at most ${MAX_SOCKETS} sockets`)
  })
})
