/**
 * The harness scrapes every engine's metrics endpoint over HTTP during a real run and at its
 * end; the engines' counters must agree with what the harness counted itself.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runLoadTest, writeReport } from '../../src/loadtest/index.ts'
import { byLabel } from '../../src/loadtest/metrics-summary.ts'
import type { LoadTestFaults, LoadTestResult } from '../../src/loadtest/options.ts'
import type { SeriesValues } from '../../src/loadtest/scrape.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from '../support/fault-proxy.ts'

const KiB = 1024
const MiB = 1024 * KiB

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0)
const finalOf = (r: LoadTestResult, i: number): SeriesValues => {
  const f = r.metrics!.processes[i]!.final
  expect(f, `final scrape of process ${i}`).not.toBeNull()
  return f!
}

describe('load test: the engines’ metrics, scraped over HTTP', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('a clean mesh run: bytes received and transfers done agree with the harness, per process and in total', async () => {
    const r = await runLoadTest({
      processes: 3,
      transfers: 12,
      concurrency: 4,
      minBytes: 64 * KiB,
      maxBytes: 3 * MiB,
      files: 6,
      durationMs: 60_000,
      scrapeMs: 250,
      scrapeSamples: 4,
    })
    expect(r.successRate).toBe(1)
    const m = r.metrics!
    expect(m).not.toBeNull()
    expect(m.processes).toHaveLength(3)
    expect(m.failedScrapes).toBe(0)
    expect(m.totals.haul_received_bytes_total).toBe(r.bytesDelivered)
    expect(m.totals.haul_kept_bytes_total).toBe(0)
    expect(byLabel(m.totals, 'haul_transfers_total')).toEqual({ done: 12 })
    expect(byLabel(m.totals, 'haul_transfer_failures_total')).toEqual({})
    expect(sum(byLabel(m.totals, 'haul_transfer_retries_total'))).toBe(r.retries)
    expect(m.totals.haul_chunks_verification_failed_total).toBe(0)
    for (let i = 0; i < 3; i++) {
      const f = finalOf(r, i)
      const into = r.records.filter((x) => x.to === i)
      const outOf = r.records.filter((x) => x.from === i)
      expect(f.haul_received_bytes_total, `process ${i} received`).toBe(into.reduce((s, x) => s + x.bytes, 0))
      expect(f['haul_transfers_total{outcome="done"}'] ?? 0).toBe(into.length)
      // A sender counts what it served; nothing is served twice without faults.
      expect(f.haul_sent_bytes_total).toBeLessThanOrEqual(outOf.reduce((s, x) => s + x.bytes, 0))
      expect(f['haul_transfers{state="fetching"}']).toBe(0)
      expect(f.haul_transfers_active).toBe(0)
      const p = m.processes[i]!
      // Bounded: thinned to at most 4 periodic samples, evenly spaced, in time order.
      expect(p.samples.length).toBeGreaterThan(0)
      expect(p.samples.length).toBeLessThanOrEqual(4)
      expect(p.everyMs % 250).toBe(0)
      for (let k = 1; k < p.samples.length; k++) expect(p.samples[k]!.t).toBeGreaterThan(p.samples[k - 1]!.t)
      // Counters never go down between scrapes.
      const received = [
        ...p.samples.map((s) => s.values.haul_received_bytes_total!),
        f.haul_received_bytes_total!,
      ]
      expect(received).toEqual([...received].sort((a, b) => a - b))
      expect(p.peaks.haul_memory_used_bytes).toBeLessThanOrEqual(p.peaks.haul_memory_budget_bytes!)
    }
    expect(m.totals.haul_sent_bytes_total).toBeGreaterThan(0)

    const dir = await mkdtemp(join(tmpdir(), 'haul-lt-metrics-'))
    dirs.push(dir)
    const { json, html } = await writeReport(r, dir)
    const parsed = JSON.parse(await readFile(json, 'utf8')) as LoadTestResult
    expect(parsed.metrics!.processes[0]!.samples).toEqual(m.processes[0]!.samples)
    expect(await readFile(html, 'utf8')).toContain(
      '<tr id="row-metrics-transfers"><th>transfers by outcome</th><td>done × 12</td>',
    )
  })

  it('every connection cut: failures and retries by code agree with the harness’s tallies', async () => {
    const proxies = new Map<number, FaultProxy>()
    const faults: LoadTestFaults = {
      async wrapTicket(ticket, sender) {
        let p = proxies.get(sender)
        if (p === undefined) {
          const target = { port: tcpPortOf(decodeSwarmTicket(ticket).providers[0]!.addrs) }
          p = await FaultProxy.start({ target, plan: () => ({ cutAfterBytes: 0 }) })
          proxies.set(sender, p)
        }
        return proxyTicket(ticket, p)
      },
    }
    try {
      const r = await runLoadTest({
        processes: 2,
        transfers: 3,
        concurrency: 3,
        minBytes: 256 * KiB,
        maxBytes: 256 * KiB,
        files: 1,
        topology: 'fan-out',
        durationMs: 60_000,
        engine: {
          workers: 1,
          retry: { maxAttempts: 3, maxAttemptsFirstContact: 3, baseDelayMs: 10, maxDelayMs: 20 },
        },
        faults,
      })
      expect(r.failed).toBe(3)
      expect(r.retries).toBe(6)
      const t = r.metrics!.totals
      expect(byLabel(t, 'haul_transfer_failures_total')).toEqual(r.errors)
      expect(byLabel(t, 'haul_transfers_total')).toEqual({ failed: 3 })
      expect(sum(byLabel(t, 'haul_transfer_retries_total'))).toBe(r.retries)
      // The receiver (process 1) has every failure; the sender none.
      expect(byLabel(finalOf(r, 1), 'haul_transfer_failures_total')).toEqual(r.errors)
      expect(byLabel(finalOf(r, 0), 'haul_transfer_failures_total')).toEqual({})
      expect(t.haul_received_bytes_total).toBe(0)
    } finally {
      await Promise.all([...proxies.values()].map((p) => p.close()))
    }
  })

  it('built-in cuts that every transfer survives: retries match, and bytes received still equal the bytes delivered', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 4,
      concurrency: 2,
      minBytes: 2 * MiB,
      maxBytes: 3 * MiB,
      files: 2,
      topology: 'fan-out',
      durationMs: 90_000,
      faults: { cutEveryMs: [300, 700], rateBytesPerSec: 8_000_000 },
      engine: { workers: 1, retry: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 30 } },
    })
    expect(r.successRate).toBe(1)
    expect(r.faultsInjected!.cuts).toBeGreaterThan(0)
    const t = r.metrics!.totals
    expect(r.retries).toBeGreaterThan(0)
    expect(sum(byLabel(t, 'haul_transfer_retries_total'))).toBe(r.retries)
    expect(t.haul_received_bytes_total).toBe(r.bytesDelivered)
    expect(byLabel(t, 'haul_transfers_total')).toEqual({ done: 4 })
  })

  it('scrapeMs 0: no endpoint, no metrics in the result', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 1,
      minBytes: 64 * KiB,
      maxBytes: 64 * KiB,
      files: 1,
      scrapeMs: 0,
    })
    expect(r.successRate).toBe(1)
    expect(r.metrics).toBeNull()
  })
})
