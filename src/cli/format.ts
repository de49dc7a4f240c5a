import { isHaulError } from '../errors.ts'
import type { TransferProgress } from '../transfer/progress.ts'

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`
}

/** In MiB/s, the unit of the sizes beside it and of the rates the flags take (`--max-rate 10M`). */
export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / (1024 * 1024)).toFixed(1)} MiB/s`
}

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** One line: bar, percentage, bytes, rate, ETA. */
export function progressLine(p: TransferProgress, width = 30): string {
  const frac = p.totalBytes === 0 ? 1 : p.bytesDone / p.totalBytes
  const filled = Math.round(frac * width)
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled)
  return `${bar} ${(frac * 100).toFixed(1).padStart(5)}%  ${formatBytes(p.bytesDone)} / ${formatBytes(p.totalBytes)}  ${formatRate(p.rate)}  ETA ${formatDuration(p.etaSeconds)}`
}

/** What a user sees for a failure: the stable code and the actionable message. */
export function describeError(err: unknown): { code: string; message: string } {
  if (isHaulError(err)) return { code: err.code, message: err.message }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

/** `1 file`, `2 files`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** How human output names the metrics endpoint (`--metrics`). */
export function metricsLine(address: string): string {
  return `metrics: http://${address}/metrics`
}
