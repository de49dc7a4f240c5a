/**
 * The load test's report: one self-contained HTML page (no scripts, no
 * external files) with three inline SVG charts, and the JSON result beside it.
 * The throughput chart carries rows of markers above its plot: the faults
 * injected (cuts, stalls) and the failures, one row per error code.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LoadTestFaultSpec } from './faults.ts'
import { metricsLines } from './metrics-summary.ts'
import type { LoadSample, LoadTestResult } from './options.ts'
import { fmtBytes } from './stats.ts'

/** The live line: elapsed, done/failed/active, delivered, current rate, RSS of each process. */
export function summaryLine(s: LoadSample, planned: number, prev?: LoadSample): string {
  const dt = prev === undefined ? 0 : s.t - prev.t
  const rate = dt > 0 ? (s.bytesDone - prev!.bytesDone) / dt : 0
  const rss = s.rss.map((r) => (r / 1e6).toFixed(0)).join('/')
  return `${s.t.toFixed(1)}s  ${s.done}/${planned} done  ${s.failed} failed  ${s.active} active  ${fmtBytes(s.bytesDone)}  ${fmtBytes(rate)}/s  rss ${rss} MB`
}

/** Writes `<dir>/loadtest.json` and `<dir>/loadtest.html`; returns their paths. */
export async function writeReport(
  result: LoadTestResult,
  dir: string,
): Promise<{ json: string; html: string }> {
  const json = join(dir, 'loadtest.json')
  const html = join(dir, 'loadtest.html')
  await writeFile(json, `${JSON.stringify(result, null, 2)}\n`)
  await writeFile(html, renderHtml(result))
  return { json, html }
}

interface Series {
  name: string
  points: Array<[number, number]>
}

/** One row of markers on a time axis: a fault kind, or the failures with one code. */
interface MarkerRow {
  kind: 'cut' | 'stall' | 'failure'
  label: string
  color: string
  /** [start, length] in seconds; a length of 0 is an instant. */
  marks: Array<[number, number]>
}

/** Failure codes with a row of their own; the rarer ones share an "other" row. */
const MAX_CODE_ROWS = 6
const ROW_H = 11
const FAILURE_COLORS = ['#d62728', '#9467bd', '#8c564b', '#e377c2', '#ff7f0e', '#17becf', '#7f7f7f']

const W = 640
const PLOT_H = 240
const PLOT_PAD = { l: 56, r: 12, t: 12, b: 32 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf']

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** At most `n` points: a chart of 100,000 samples would be a page no browser wants. */
function thin<T>(xs: T[], n = 400): T[] {
  if (xs.length <= n) return xs
  const step = xs.length / n
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)]!)
}

function ticks(max: number): number[] {
  if (max <= 0) return [0]
  const raw = max / 4
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag
  const out: number[] = []
  for (let v = 0; v <= max * 1.0001; v += step) out.push(v)
  return out
}

type Scale = (v: number) => number

/** A chart's axes and grid; `top` px above the plot are left to the caller's body (marker rows). */
function frame(
  id: string,
  xMax: number,
  yMax: number,
  xLabel: string,
  yLabel: string,
  body: (sx: Scale, sy: Scale) => string,
  top = 0,
): string {
  const H = PLOT_H + top
  const PAD = { ...PLOT_PAD, t: PLOT_PAD.t + top }
  const sx = (x: number) => PAD.l + (xMax > 0 ? (x / xMax) * (W - PAD.l - PAD.r) : 0)
  const sy = (y: number) => H - PAD.b - (yMax > 0 ? (y / yMax) * (H - PAD.t - PAD.b) : 0)
  const grid = ticks(yMax)
    .map(
      (v) =>
        `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${sy(v)}" y2="${sy(v)}" stroke="#ddd"/><text x="${PAD.l - 4}" y="${sy(v) + 4}" text-anchor="end">${+v.toPrecision(3)}</text>`,
    )
    .join('')
  const xt = ticks(xMax)
    .map((v) => `<text x="${sx(v)}" y="${H - PAD.b + 14}" text-anchor="middle">${+v.toPrecision(3)}</text>`)
    .join('')
  return `<svg id="${id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-size="10" font-family="sans-serif">${grid}${xt}<line x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}" stroke="#444"/><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}" stroke="#444"/><text x="${(W + PAD.l) / 2}" y="${H - 4}" text-anchor="middle">${esc(xLabel)}</text><text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>${body(sx, sy)}</svg>`
}

function lineChart(
  id: string,
  series: Series[],
  xLabel: string,
  yLabel: string,
  rows: MarkerRow[] = [],
): string {
  const all = series.flatMap((s) => s.points)
  let xMax = Math.max(0, ...all.map((p) => p[0]))
  for (const r of rows) for (const [t, len] of r.marks) xMax = Math.max(xMax, t + len)
  const yMax = Math.max(0, ...all.map((p) => p[1])) * 1.05
  const top = rows.length === 0 ? 0 : rows.length * ROW_H + 6
  const body = (sx: Scale, sy: Scale): string =>
    rows.map((r, i) => markerRow(r, PLOT_PAD.t + i * ROW_H, sx)).join('') +
    series
      .map((s, i) => {
        const c = COLORS[i % COLORS.length]
        const pts = thin(s.points)
        const line = pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')
        const dots = pts
          .map(
            ([x, y]) =>
              `<circle class="pt" cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="1.5" fill="${c}" data-x="${x.toFixed(3)}" data-y="${y.toFixed(3)}"/>`,
          )
          .join('')
        return `<g class="series" data-name="${esc(s.name)}"><polyline fill="none" stroke="${c}" stroke-width="1.5" points="${line}"/>${dots}</g>`
      })
      .join('')
  return frame(id, xMax, yMax, xLabel, yLabel, body, top)
}

/**
 * One row of markers, `ROW_H` px high from `y`: at most one marker per pixel column (a run with
 * thousands of cuts stays a light page), the row's count on its <g>, its label on the left.
 */
function markerRow(r: MarkerRow, y: number, sx: Scale): string {
  const seen = new Set<number>()
  const marks: string[] = []
  for (const [t, len] of r.marks) {
    const x = sx(t)
    const px = Math.round(x)
    if (seen.has(px)) continue
    seen.add(px)
    const d = `data-t="${t.toFixed(3)}"`
    if (r.kind === 'failure')
      marks.push(
        `<path class="mark-failure" ${d} d="M${(x - 3).toFixed(1)},${y + 1} h6 l-3,${ROW_H - 3} z" fill="${r.color}"/>`,
      )
    else if (r.kind === 'stall')
      marks.push(
        `<rect class="mark-stall" ${d} x="${x.toFixed(1)}" y="${y + 1}" width="${Math.max(1, sx(t + len) - x).toFixed(1)}" height="${ROW_H - 3}" fill="${r.color}" fill-opacity="0.6"/>`,
      )
    else
      marks.push(
        `<line class="mark-cut" ${d} x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y + 1}" y2="${y + ROW_H - 2}" stroke="${r.color}"/>`,
      )
  }
  const label = r.label.length > 10 ? `${r.label.slice(0, 9)}…` : r.label
  const code = r.kind === 'failure' ? ` data-code="${esc(r.label)}"` : ''
  return `<g class="markers" data-kind="${r.kind}"${code} data-count="${r.marks.length}"><title>${esc(r.label)} × ${r.marks.length}</title><text x="${PLOT_PAD.l - 4}" y="${y + ROW_H - 3}" text-anchor="end" font-size="8">${esc(label)}</text>${marks.join('')}</g>`
}

/** Rows for the throughput chart: cuts, stalls, then failures by code (most frequent first). */
function markerRows(r: LoadTestResult): MarkerRow[] {
  const rows: MarkerRow[] = []
  const events = r.faultsInjected?.events ?? []
  const cuts = events.filter((e) => e.kind === 'cut').map((e): [number, number] => [e.t, 0])
  const stalls = events
    .filter((e) => e.kind === 'stall')
    .map((e): [number, number] => [e.t, (e.ms ?? 0) / 1000])
  if (cuts.length > 0) rows.push({ kind: 'cut', label: 'cuts', color: '#555', marks: cuts })
  if (stalls.length > 0) rows.push({ kind: 'stall', label: 'stalls', color: '#bcbd22', marks: stalls })
  const byCode = new Map<string, Array<[number, number]>>()
  for (const x of r.records) {
    if (x.ok || x.cancelled === true) continue
    const code = x.error ?? 'unknown'
    let list = byCode.get(code)
    if (list === undefined) byCode.set(code, (list = []))
    list.push([x.endedAt, 0])
  }
  const codes = [...byCode.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1))
  const own = codes.length > MAX_CODE_ROWS + 1 ? codes.slice(0, MAX_CODE_ROWS) : codes
  const rest = codes.slice(own.length).flatMap(([, m]) => m)
  for (const [i, [code, marks]] of own.entries())
    rows.push({ kind: 'failure', label: code, color: FAILURE_COLORS[i % FAILURE_COLORS.length]!, marks })
  if (rest.length > 0)
    rows.push({
      kind: 'failure',
      label: 'other',
      color: FAILURE_COLORS.at(-1)!,
      marks: rest.sort((a, b) => a[0] - b[0]),
    })
  return rows
}

/** The fault schedule in words, from the options. */
function schedule(f: LoadTestFaultSpec | boolean): string {
  if (f === false) return 'none'
  if (f === true) return "the caller's hook (LoadTestFaults)"
  const parts: string[] = []
  if (f.cutEveryMs !== undefined)
    parts.push(`each connection cut after ${f.cutEveryMs[0]}–${f.cutEveryMs[1]} ms (${f.cutMode ?? 'reset'})`)
  if (f.stallEveryMs !== undefined)
    parts.push(`every link stalled for ${f.stallMs ?? 2_000} ms every ${f.stallEveryMs} ms`)
  if (f.rateBytesPerSec !== undefined)
    parts.push(`link rate ${fmtBytes(f.rateBytesPerSec)}/s per sender and direction`)
  return parts.length === 0 ? 'a proxy in front of each sender, no faults' : parts.join('; ')
}

function histogram(id: string, values: number[], marks: Array<[string, number]>): string {
  const max = Math.max(0, ...values)
  const bins = Math.max(1, Math.min(40, Math.ceil(Math.sqrt(values.length))))
  const width = max > 0 ? max / bins : 1
  const counts = new Array<number>(bins).fill(0)
  for (const v of values) counts[Math.min(bins - 1, Math.floor(v / width))]!++
  const yMax = Math.max(1, ...counts) * 1.05
  const xMax = width * bins
  const body = (sx: Scale, sy: Scale): string => {
    const bars = counts
      .map((n, i) => {
        const x0 = sx(i * width)
        const x1 = sx((i + 1) * width)
        return `<rect class="bar" x="${x0.toFixed(1)}" y="${sy(n).toFixed(1)}" width="${Math.max(0.5, x1 - x0 - 1).toFixed(1)}" height="${(sy(0) - sy(n)).toFixed(1)}" fill="#1f77b4" data-count="${n}"/>`
      })
      .join('')
    const lines = marks
      .map(
        ([name, v], i) =>
          `<line class="mark" x1="${sx(v)}" x2="${sx(v)}" y1="${PLOT_PAD.t}" y2="${sy(0)}" stroke="${COLORS[(i + 1) % COLORS.length]}" stroke-dasharray="4 3"/><text x="${sx(v) + 3}" y="${PLOT_PAD.t + 10 + i * 11}">${name} ${v.toFixed(2)} s</text>`,
      )
      .join('')
    return bars + lines
  }
  return frame(id, xMax, yMax, 'completion time, s', 'transfers', body)
}

/** The engines' own counters, scraped from their metrics endpoints (the time series are in the JSON). */
function metricsSection(r: LoadTestResult): string {
  if (r.metrics === null) return ''
  const rows = metricsLines(r.metrics)
    .map(([id, k, v]) => `<tr id="row-${id}"><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join('\n')
  return `<h2>Engine metrics (scraped)</h2>
<p>Final values of every engine's Prometheus endpoint, summed over the processes; highest levels in any one process.</p>
<table id="metrics">
${rows}
</table>`
}

export function renderHtml(r: LoadTestResult): string {
  const s = r.samples
  const rate: Series = { name: 'goodput MB/s', points: [] }
  for (let i = 1; i < s.length; i++) {
    const dt = s[i]!.t - s[i - 1]!.t
    if (dt > 0) rate.points.push([s[i]!.t, (s[i]!.bytesDone - s[i - 1]!.bytesDone) / dt / 1e6])
  }
  const mem: Series[] = r.processes.map((p) => ({
    name: `process ${p.index}`,
    points: s.map((x) => [x.t, (x.rss[p.index] ?? 0) / 1e6] as [number, number]).filter((x) => x[1] > 0),
  }))
  const times = r.records.filter((x) => x.ok).map((x) => x.seconds)
  const c = r.completion
  const row = (id: string, k: string, v: string) =>
    `<tr id="row-${id}"><th>${esc(k)}</th><td>${esc(v)}</td></tr>`
  const errors = Object.entries(r.errors)
    .map(([k, n]) => `${k} × ${n}`)
    .join(', ')
  const legend = mem
    .map((m, i) => `<span style="color:${COLORS[i % COLORS.length]}">■ ${esc(m.name)}</span>`)
    .join(' ')
  const rows = markerRows(r)
  const glyph = { cut: '|', stall: '▬', failure: '▼' }
  const markerLegend = rows
    .map(
      (m) =>
        `<span class="legend-${m.kind}" style="color:${m.color}">${glyph[m.kind]} ${esc(m.kind === 'failure' ? `failed: ${m.label}` : m.label)} × ${m.marks.length}</span>`,
    )
    .join(' ')
  const f = r.faultsInjected
  const dropped = f !== null && f.eventsDropped > 0 ? ` (${f.eventsDropped} more events not charted)` : ''
  const topology =
    r.options.topology === 'mesh'
      ? 'mesh: every process publishes files and fetches from the others'
      : 'fan-out: process 0 sends to all the others'
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>haul load test ${esc(r.startedAt)}</title>
<style>body{font:14px/1.4 sans-serif;margin:24px;max-width:720px}table{border-collapse:collapse}th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}th{font-weight:600}h2{margin-top:28px;font-size:16px}</style>
</head><body>
<h1>haul load test</h1>
<table id="summary">
${row('started', 'started', r.startedAt)}
${row('size', 'processes × transfers', `${r.options.processes} × ${r.planned} (concurrency ${r.options.concurrency}, ${r.options.distribution} ${fmtBytes(r.options.minBytes)}–${fmtBytes(r.options.maxBytes)})`)}
${row('topology', 'topology', topology)}
${row('stopped', 'stopped by', `${r.stoppedBy} after ${r.seconds.toFixed(1)} s (limit ${(r.options.durationMs / 1000).toFixed(0)} s)`)}
${row('success', 'success rate', `${(r.successRate * 100).toFixed(1)} % (${r.ok} ok, ${r.failed} failed, ${r.unfinished} unfinished of which ${r.cancelled} cancelled at the deadline)`)}
${row('check', 'content check', r.options.checkDownloads ? 'SHA-256 of every download compared with the generated file' : "off (the engine's own verification only)")}
${row('goodput', 'aggregate goodput', `${fmtBytes(r.goodput)}/s (${fmtBytes(r.bytesDelivered)} delivered)`)}
${row('completion', 'completion p50 / p95 / p99 / max', `${c.p50.toFixed(2)} / ${c.p95.toFixed(2)} / ${c.p99.toFixed(2)} / ${c.max.toFixed(2)} s`)}
${row('rss', 'peak RSS per process', r.processes.map((p) => `${p.index}: ${fmtBytes(p.peakRss)} (idle ${fmtBytes(p.idleRss)})`).join(', '))}
${row('retries', 'retries', String(r.retries))}
${row('wire', 'bytes on the wire (both directions)', r.wireBytes === null ? 'not measured (no fault proxy)' : fmtBytes(r.wireBytes))}
${row('resent', 'bytes re-sent', r.bytesResent === null ? 'not measured (no fault proxy)' : `${fmtBytes(r.bytesResent)} (wire beyond verified bytes, framing and encryption included)`)}
${row('schedule', 'fault schedule', schedule(r.options.faults))}
${row('faults', 'faults injected', f === null ? 'none built in' : `${f.cuts} cuts, ${f.stalls} stalls${dropped}`)}
${row('errors', 'errors', errors === '' ? 'none' : errors)}
</table>
${metricsSection(r)}
<h2>Throughput over time</h2>
${rows.length === 0 ? '' : `<p id="markers-legend">${markerLegend}</p>\n`}${lineChart('throughput', [rate], 'time, s', 'MB/s', rows)}
<h2>Completion-time distribution</h2>
${histogram('completion', times, [
  ['p50', c.p50],
  ['p95', c.p95],
  ['p99', c.p99],
])}
<h2>Memory over time (RSS)</h2>
<p>${legend}</p>
${lineChart('memory', mem, 'time, s', 'MB')}
</body></html>
`
}
