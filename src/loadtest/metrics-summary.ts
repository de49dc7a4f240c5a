/**
 * The scraped metrics in words, for the HTML report and the CLI: the final counters summed
 * over the processes, and the highest levels any one process reported.
 */
import { keyName } from './prom-text.ts'
import type { LoadTestMetrics, SeriesValues } from './scrape.ts'
import { fmtBytes } from './stats.ts'

/** One line of the summary: a short name, and the figures. */
export type MetricsLine = [id: string, label: string, text: string]

/** `{ label value: value }` of metric `name` in `values` (one label per metric here). */
export function byLabel(values: SeriesValues, name: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(values)) {
    if (keyName(k) !== name || k === name) continue
    const m = /="((?:[^"\\]|\\.)*)"/.exec(k)
    if (m !== null) out[m[1]!] = v
  }
  return out
}

function list(r: Record<string, number>): string {
  const parts = Object.entries(r)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${k} × ${n}`)
  return parts.length === 0 ? 'none' : parts.join(', ')
}

export function metricsLines(m: LoadTestMetrics): MetricsLine[] {
  const t = m.totals
  const p = m.peaks
  const n = (k: string): number => t[k] ?? 0
  const most = (k: string): number => p[k] ?? 0
  const states = byLabel(p, 'haul_transfers')
  const stateText = Object.entries(states)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  return [
    [
      'metrics-bytes',
      'bytes (engines’ counters)',
      `received ${fmtBytes(n('haul_received_bytes_total'))}, sent ${fmtBytes(n('haul_sent_bytes_total'))} (${fmtBytes(n('haul_sent_wire_bytes_total'))} on the wire), duplicate ${fmtBytes(n('haul_duplicate_bytes_total'))}`,
    ],
    ['metrics-transfers', 'transfers by outcome', list(byLabel(t, 'haul_transfers_total'))],
    ['metrics-failures', 'failures by code', list(byLabel(t, 'haul_transfer_failures_total'))],
    ['metrics-retries', 'retries by code', list(byLabel(t, 'haul_transfer_retries_total'))],
    ['metrics-corrupt', 'chunks failing verification', String(n('haul_chunks_verification_failed_total'))],
    [
      'metrics-budget',
      'budget in use, highest',
      `${fmtBytes(most('haul_memory_used_bytes'))} of ${fmtBytes(most('haul_memory_budget_bytes'))} (work ${fmtBytes(most('haul_memory_work_bytes'))})`,
    ],
    [
      'metrics-queues',
      'queues, deepest',
      `transfers queued ${most('haul_transfers_queued')}, active ${most('haul_transfers_active')}; budget waiters ${most('haul_memory_waiting')}; worker tasks queued ${most('haul_worker_tasks_queued')}${stateText === '' ? '' : `; by state ${stateText}`}`,
    ],
    [
      'metrics-scrapes',
      'scrapes',
      `${m.scrapes} (${m.failedScrapes} failed), every ${m.scrapeMs} ms, at most ${m.maxSamples} kept per process`,
    ],
  ]
}
