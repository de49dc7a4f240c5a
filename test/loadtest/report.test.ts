/** The report renderer on hand-built results: no processes, every marker at a known place. */
import { describe, expect, it } from 'vitest'
import { renderHtml } from '../../src/loadtest/index.ts'
import type { LoadTestResult, TransferRecord } from '../../src/loadtest/options.ts'

const MiB = 1024 * 1024

function rec(index: number, endedAt: number, error?: string, cancelled?: boolean): TransferRecord {
  return {
    index,
    bytes: MiB,
    from: 0,
    to: 1,
    ok: error === undefined && cancelled !== true,
    ...(cancelled === true ? { cancelled } : {}),
    seconds: 1,
    endedAt,
    retries: error === undefined ? 0 : 3,
    ...(error === undefined ? {} : { error }),
  }
}

/** A deadline-stopped fan-out run: one ok, two failures of one code, one of another, one cancelled. */
function result(): LoadTestResult {
  return {
    options: {
      processes: 2,
      transfers: 6,
      concurrency: 2,
      minBytes: MiB,
      maxBytes: MiB,
      distribution: 'uniform',
      files: 1,
      topology: 'fan-out',
      durationMs: 10_000,
      sampleMs: 250,
      seed: 1,
      engine: { workers: 1 },
      execArgv: [],
      checkDownloads: true,
      scrapeMs: 1_000,
      scrapeSamples: 120,
      faults: {
        cutEveryMs: [100, 200],
        cutMode: 'close',
        stallEveryMs: 1_000,
        stallMs: 300,
        rateBytesPerSec: 1_000_000,
      },
    },
    startedAt: new Date(0).toISOString(),
    seconds: 10,
    stoppedBy: 'deadline',
    planned: 6,
    ok: 1,
    failed: 3,
    unfinished: 2,
    cancelled: 1,
    successRate: 1 / 6,
    bytesDelivered: MiB,
    goodput: MiB / 10,
    completion: { p50: 1, p95: 1, p99: 1, max: 1 },
    processes: [
      { index: 0, pid: 1, idleRss: 1e8, peakRss: 2e8 },
      { index: 1, pid: 2, idleRss: 1e8, peakRss: 2e8 },
    ],
    retries: 9,
    wireBytes: 3 * MiB,
    bytesResent: 2 * MiB,
    faultsInjected: {
      cuts: 3,
      stalls: 1,
      events: [
        { t: 0.5, kind: 'cut', sender: 0 },
        { t: 1.5, kind: 'stall', ms: 300 },
        { t: 2.5, kind: 'cut', sender: 0 },
      ],
      eventsDropped: 1,
    },
    errors: { RETRIES_EXHAUSTED: 2, CONTENT_MISMATCH: 1 },
    samples: [0, 1, 2, 3, 4].map((t) => ({
      t,
      bytesDone: t * 250_000,
      done: 0,
      failed: 0,
      active: 1,
      rss: [1e8, 1e8],
    })),
    records: [
      rec(0, 1),
      rec(1, 2, 'RETRIES_EXHAUSTED'),
      rec(2, 3, 'RETRIES_EXHAUSTED'),
      rec(3, 4, 'CONTENT_MISMATCH'),
      rec(4, 10, undefined, true),
    ],
    metrics: null,
  }
}

const throughputChart = (page: string): string => /<svg id="throughput"[\s\S]*?<\/svg>/.exec(page)?.[0] ?? ''
const count = (html: string, cls: string): number =>
  (html.match(new RegExp(`class="${cls}"`, 'g')) ?? []).length

describe('load-test report', () => {
  it('marks each failure code and each fault kind on the throughput chart, and shows topology and fault schedule', () => {
    const page = renderHtml(result())
    const chart = throughputChart(page)
    const row = (attrs: string) =>
      new RegExp(`<g class="markers" ${attrs}[^>]*>([\\s\\S]*?)</g>`).exec(chart)?.[1] ?? ''
    expect(count(row('data-kind="cut" data-count="2"'), 'mark-cut')).toBe(2)
    expect(count(row('data-kind="stall" data-count="1"'), 'mark-stall')).toBe(1)
    expect(
      count(row('data-kind="failure" data-code="RETRIES_EXHAUSTED" data-count="2"'), 'mark-failure'),
    ).toBe(2)
    expect(
      count(row('data-kind="failure" data-code="CONTENT_MISMATCH" data-count="1"'), 'mark-failure'),
    ).toBe(1)
    // The cancelled transfer is not a failure: no marker of its own.
    expect(count(chart, 'mark-failure')).toBe(3)
    expect(page).toContain('failed: RETRIES_EXHAUSTED × 2')
    expect(page).toContain('failed: CONTENT_MISMATCH × 1')
    expect(page).toContain('3 cuts, 1 stalls (1 more events not charted)')
    expect(page).toContain('1 ok, 3 failed')
    expect(page).toContain('2 unfinished of which 1 cancelled at the deadline')
    expect(page).toMatch(/<tr id="row-topology"><th>topology<\/th><td>fan-out/)
    expect(page).toContain(
      'each connection cut after 100–200 ms (close); every link stalled for 300 ms every 1000 ms; link rate 1.0 MB/s per sender and direction',
    )
    expect(page).toContain('3.1 MB') // wire bytes, both directions
    expect(page).not.toContain('id="metrics"') // not scraped: no section
  })

  it('summarises the scraped metrics: counters summed over the processes, the highest levels', () => {
    const values = {
      haul_received_bytes_total: MiB,
      'haul_transfers_total{outcome="done"}': 1,
      'haul_transfers_total{outcome="failed"}': 3,
      'haul_transfer_failures_total{code="RETRIES_EXHAUSTED"}': 2,
      'haul_transfer_retries_total{code="PEER_UNREACHABLE"}': 9,
    }
    const r: LoadTestResult = {
      ...result(),
      metrics: {
        scrapeMs: 1_000,
        maxSamples: 120,
        scrapes: 12,
        failedScrapes: 1,
        totals: { ...values, haul_sent_bytes_total: 2 * MiB },
        peaks: {
          haul_memory_used_bytes: 3_000_000,
          haul_transfers_queued: 5,
          'haul_transfers{state="fetching"}': 2,
        },
        processes: [0, 1].map((index) => ({
          index,
          address: `127.0.0.1:${9000 + index}`,
          final: values,
          peaks: {},
          samples: [{ t: 0, values }],
          everyMs: 1_000,
        })),
      },
    }
    const page = renderHtml(r)
    const cell = (id: string) =>
      new RegExp(`<tr id="row-${id}"><th>[^<]*</th><td>([^<]*)</td>`).exec(page)?.[1]
    expect(cell('metrics-bytes')).toMatch(/^received 1\.0 MB, sent 2\.1 MB/)
    expect(cell('metrics-transfers')).toBe('failed × 3, done × 1')
    expect(cell('metrics-failures')).toBe('RETRIES_EXHAUSTED × 2')
    expect(cell('metrics-retries')).toBe('PEER_UNREACHABLE × 9')
    expect(cell('metrics-budget')).toMatch(/^3\.0 MB of /)
    expect(cell('metrics-queues')).toContain('transfers queued 5')
    expect(cell('metrics-queues')).toContain('by state fetching 2')
    expect(cell('metrics-scrapes')).toBe('12 (1 failed), every 1000 ms, at most 120 kept per process')
  })

  it('stays readable with many failures and faults: one marker per pixel column, rare codes share a row', () => {
    const records = Array.from({ length: 2_000 }, (_, i) => rec(i, i / 100, `CODE_${i % 12}`))
    const events = Array.from({ length: 5_000 }, (_, i) => ({ t: i / 250, kind: 'cut' as const, sender: 0 }))
    const r: LoadTestResult = {
      ...result(),
      faultsInjected: { cuts: 5_000, stalls: 0, events, eventsDropped: 0 },
      records,
    }
    const chart = throughputChart(renderHtml(r))
    const rows = [
      ...chart.matchAll(/<g class="markers" data-kind="failure" data-code="([^"]+)" data-count="(\d+)"/g),
    ]
    expect(rows).toHaveLength(7) // six codes of their own, then "other"
    expect(rows.at(-1)![1]).toBe('other')
    expect(rows.reduce((s, m) => s + Number(m[2]), 0)).toBe(2_000)
    expect(chart).toContain('data-kind="cut" data-count="5000"')
    // The plot is under 600 px wide: thousands of events become at most one marker per column.
    expect(count(chart, 'mark-cut')).toBeGreaterThan(100)
    expect(count(chart, 'mark-cut')).toBeLessThan(600)
    expect(count(chart, 'mark-failure')).toBeLessThan(7 * 600)
  })
})
