/** The harness's Prometheus text reader, its bounded sample list and its scraper, without engine processes. */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, Gauge, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { parseExposition, seriesKey } from '../../src/loadtest/prom-text.ts'
import { Downsampled, keptSeries, MetricsScraper } from '../../src/loadtest/scrape.ts'

describe('parseExposition', () => {
  it('reads what prom-client writes, labels and all', async () => {
    const registry = new Registry()
    const c = new Counter({
      name: 'haul_transfers_total',
      help: 'x',
      labelNames: ['outcome'],
      registers: [registry],
    })
    const g = new Gauge({ name: 'haul_memory_used_bytes', help: 'y', registers: [registry] })
    c.inc({ outcome: 'done' }, 7)
    c.inc({ outcome: 'failed' }, 2)
    g.set(16_777_216)
    const got = parseExposition(await registry.metrics())
    expect(got).toEqual([
      { name: 'haul_transfers_total', labels: { outcome: 'done' }, value: 7 },
      { name: 'haul_transfers_total', labels: { outcome: 'failed' }, value: 2 },
      { name: 'haul_memory_used_bytes', labels: {}, value: 16_777_216 },
    ])
  })

  it('reads escapes, blanks, trailing commas, timestamps, special values and exponents', () => {
    const text = [
      '# HELP m a "help" line',
      '# TYPE m counter',
      '',
      'm{b="x\\"y",a="back\\\\slash\\nnl",} 1.5e3 1700000000000',
      '  m_2 { a = "1" }\t-Inf',
      'm_3 NaN',
      'm_4 +Inf',
      'm_5 -.5',
    ].join('\n')
    const got = parseExposition(text)
    expect(got[0]).toEqual({ name: 'm', labels: { b: 'x"y', a: 'back\\slash\nnl' }, value: 1500 })
    expect(got[1]).toEqual({ name: 'm_2', labels: { a: '1' }, value: Number.NEGATIVE_INFINITY })
    expect(got[2]!.value).toBeNaN()
    expect(got[3]!.value).toBe(Number.POSITIVE_INFINITY)
    expect(got[4]!.value).toBe(-0.5)
    // One key per series, whatever the label order on the wire; the value re-escaped.
    expect(seriesKey(got[0]!.name, got[0]!.labels)).toBe('m{a="back\\\\slash\\nnl",b="x\\"y"}')
  })

  it.each([
    ['no value', 'm'],
    ['a value that is not a number', 'm abc'],
    ['an unclosed label set', 'm{a="1" 1'],
    ['an unquoted label value', 'm{a=1} 1'],
    ['an unknown escape', 'm{a="\\t"} 1'],
    ['a bad timestamp', 'm 1 later'],
    ['a third field', 'm 1 2 3'],
    ['a name that starts with a digit', '1m 1'],
    ['nothing between name and labels', 'm{a="1"}1'],
  ])('refuses %s, naming the line', (_, line) => {
    expect(() => parseExposition(`ok 1\n${line}\n`)).toThrow(/line 2/)
    expect(() => parseExposition(line)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('keeps only the series the report uses', () => {
    const kept = keptSeries(
      [
        'haul_received_bytes_total 10',
        'haul_peer_received_bytes_total{peer="12D3KooW"} 10',
        'haul_transfer_failures_total{code="RETRIES_EXHAUSTED"} 2',
        'haul_transfers{state="fetching"} 1',
        'process_cpu_seconds_total 3',
      ].join('\n'),
    )
    expect(kept).toEqual({
      haul_received_bytes_total: 10,
      'haul_transfer_failures_total{code="RETRIES_EXHAUSTED"}': 2,
      'haul_transfers{state="fetching"}': 1,
    })
  })
})

describe('Downsampled', () => {
  it('never keeps more than its cap, keeps the first, and keeps the rest evenly spaced', () => {
    const d = new Downsampled<number>(10)
    for (let i = 0; i < 10; i++) d.push(i)
    expect(d.values()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    d.push(10) // the eleventh: every other one goes
    expect(d.values()).toEqual([0, 2, 4, 6, 8, 10])
    expect(d.stride).toBe(2)
    for (let i = 11; i < 1_000; i++) {
      d.push(i)
      expect(d.values().length).toBeLessThanOrEqual(10)
    }
    const v = d.values()
    expect(v[0]).toBe(0)
    const steps = new Set(v.slice(1).map((x, i) => x - v[i]!))
    expect([...steps]).toEqual([d.stride])
    // The newest kept is within one stride of the newest pushed.
    expect(999 - v.at(-1)!).toBeLessThan(d.stride)
  })
})

describe('MetricsScraper', () => {
  /** An endpoint answering each GET with the next of `bodies` (the last one again once they run out). */
  async function endpoint(status: number, bodies: string[]): Promise<{ address: string; server: Server }> {
    let n = 0
    const server = createServer((_, res) => {
      res.writeHead(status, { 'content-type': 'text/plain' }).end(bodies[Math.min(n++, bodies.length - 1)])
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server }
  }

  it('sums the final scrapes over the processes, takes peaks from every scrape, and counts the scrapes that failed', async () => {
    const a = await endpoint(200, [
      'haul_memory_used_bytes 900\nhaul_received_bytes_total 1',
      'haul_memory_used_bytes 100\nhaul_received_bytes_total 5\nhaul_transfer_failures_total{code="TIMEOUT"} 2',
    ])
    const b = await endpoint(503, ['too many scrapes at once'])
    const scraper = new MetricsScraper([a.address, b.address], 60_000, 10, performance.now())
    try {
      scraper.start() // one round now; the next would be a minute away
      const m = await scraper.finish()
      expect(m.scrapes).toBe(4)
      expect(m.failedScrapes).toBe(2)
      expect(m.processes[0]!.samples.map((x) => x.values.haul_received_bytes_total)).toEqual([1])
      expect(m.processes[0]!.final).toEqual({
        haul_memory_used_bytes: 100,
        haul_received_bytes_total: 5,
        'haul_transfer_failures_total{code="TIMEOUT"}': 2,
      })
      expect(m.processes[1]!.final).toBeNull()
      expect(m.totals).toEqual(m.processes[0]!.final)
      // The level was highest in the periodic scrape, not in the final one.
      expect(m.peaks).toEqual({ haul_memory_used_bytes: 900 })
    } finally {
      await Promise.all([a, b].map(({ server }) => new Promise((r) => server.close(r))))
    }
  })
})
