/**
 * The load test's report: one self-contained HTML page (no scripts, no
 * external files) with three inline SVG charts, and the JSON result beside it.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
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

const W = 640
const H = 240
const PAD = { l: 56, r: 12, t: 12, b: 32 }
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

function frame(
  id: string,
  xMax: number,
  yMax: number,
  xLabel: string,
  yLabel: string,
  body: (sx: Scale, sy: Scale) => string,
): string {
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

function lineChart(id: string, series: Series[], xLabel: string, yLabel: string): string {
  const all = series.flatMap((s) => s.points)
  const xMax = Math.max(0, ...all.map((p) => p[0]))
  const yMax = Math.max(0, ...all.map((p) => p[1])) * 1.05
  const body = (sx: Scale, sy: Scale): string =>
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
  return frame(id, xMax, yMax, xLabel, yLabel, body)
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
          `<line class="mark" x1="${sx(v)}" x2="${sx(v)}" y1="${PAD.t}" y2="${sy(0)}" stroke="${COLORS[(i + 1) % COLORS.length]}" stroke-dasharray="4 3"/><text x="${sx(v) + 3}" y="${PAD.t + 10 + i * 11}">${name} ${v.toFixed(2)} s</text>`,
      )
      .join('')
    return bars + lines
  }
  return frame(id, xMax, yMax, 'completion time, s', 'transfers', body)
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
  const row = (k: string, v: string) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`
  const errors = Object.entries(r.errors)
    .map(([k, n]) => `${k} × ${n}`)
    .join(', ')
  const legend = mem
    .map((m, i) => `<span style="color:${COLORS[i % COLORS.length]}">■ ${esc(m.name)}</span>`)
    .join(' ')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>haul load test ${esc(r.startedAt)}</title>
<style>body{font:14px/1.4 sans-serif;margin:24px;max-width:720px}table{border-collapse:collapse}th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}th{font-weight:600}h2{margin-top:28px;font-size:16px}</style>
</head><body>
<h1>haul load test</h1>
<table id="summary">
${row('started', r.startedAt)}
${row('processes × transfers', `${r.options.processes} × ${r.planned} (concurrency ${r.options.concurrency}, ${r.options.distribution} ${fmtBytes(r.options.minBytes)}–${fmtBytes(r.options.maxBytes)}, ${r.options.topology})`)}
${row('stopped by', `${r.stoppedBy} after ${r.seconds.toFixed(1)} s (limit ${(r.options.durationMs / 1000).toFixed(0)} s)`)}
${row('success rate', `${(r.successRate * 100).toFixed(1)} % (${r.ok} ok, ${r.failed} failed, ${r.unfinished} unfinished)`)}
${row('aggregate goodput', `${fmtBytes(r.goodput)}/s (${fmtBytes(r.bytesDelivered)} delivered)`)}
${row('completion p50 / p95 / p99 / max', `${c.p50.toFixed(2)} / ${c.p95.toFixed(2)} / ${c.p99.toFixed(2)} / ${c.max.toFixed(2)} s`)}
${row('peak RSS per process', r.processes.map((p) => `${p.index}: ${fmtBytes(p.peakRss)} (idle ${fmtBytes(p.idleRss)})`).join(', '))}
${row('retries', String(r.retries))}
${row('bytes re-sent', r.bytesResent === null ? 'not measured (no fault proxy)' : fmtBytes(r.bytesResent))}
${row('faults injected', r.faultsInjected === null ? 'none built in' : `${r.faultsInjected.cuts} cuts, ${r.faultsInjected.stalls} stalls`)}
${row('errors', errors === '' ? 'none' : errors)}
</table>
<h2>Throughput over time</h2>
${lineChart('throughput', [rate], 'time, s', 'MB/s')}
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
