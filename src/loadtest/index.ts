/**
 * The load-test harness as an API (`haul loadtest` is a thin CLI over it).
 *
 * @example
 * ```ts
 * import { runLoadTest, writeReport } from 'haul/dist/loadtest/index.js'
 * const r = await runLoadTest({ processes: 3, transfers: 200, concurrency: 32, durationMs: 60_000 })
 * console.log(r.successRate, r.goodput, r.completion.p99)
 * console.log(r.metrics?.totals.haul_received_bytes_total)   // the engines' own counters, scraped
 * await writeReport(r, './report')   // loadtest.json + loadtest.html
 * ```
 */

export {
  type FaultPlan,
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  proxyTicket,
  tcpPortOf,
} from './fault-proxy.ts'
export { type FaultEvent, type LoadTestFaultSpec, MAX_FAULT_EVENTS } from './faults.ts'
export { byLabel, metricsLines } from './metrics-summary.ts'
export type {
  LoadSample,
  LoadTestFaults,
  LoadTestOptions,
  LoadTestResult,
  ProcessReport,
  SizeDistribution,
  TransferRecord,
} from './options.ts'
export { CONTENT_MISMATCH, resolveLoadTestOptions } from './options.ts'
export { type PromSample, parseExposition, seriesKey } from './prom-text.ts'
export { renderHtml, summaryLine, writeReport } from './report.ts'
export { PEER_SCRIPT, runLoadTest } from './run.ts'
export {
  type LoadTestMetrics,
  type MetricsSample,
  type ProcessMetrics,
  SCRAPED_COUNTERS,
  SCRAPED_GAUGES,
  type SeriesValues,
} from './scrape.ts'
