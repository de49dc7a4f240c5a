import { isHaulError, openFilesAdvice, TooManyOpenFilesError, tooManyOpenFiles } from '../errors.ts'
import type { CheckProgress, TransferProgress } from '../transfer/progress.ts'

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

/**
 * One line: bar, percentage, bytes, rate, ETA. The bytes of chunks on their way count, so a slow
 * link's line moves between whole chunks; the summary says what was verified.
 */
export function progressLine(p: TransferProgress, width = 30): string {
  return barLine(p.bytesDone + p.bytesArriving, p.totalBytes, p.rate, p.etaSeconds, width)
}

/** The line of a check of what an earlier run left (TransferProgress.check): as progressLine. */
export function checkLine(c: CheckProgress, width = 30): string {
  return `checking ${barLine(c.bytesChecked, c.bytesToCheck, c.rate, c.etaSeconds, width)}`
}

function barLine(done: number, total: number, rate: number, eta: number | undefined, width: number): string {
  const frac = total === 0 ? 1 : done / total
  const filled = Math.round(frac * width)
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled)
  return `${bar} ${(frac * 100).toFixed(1).padStart(5)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatRate(rate)}  ETA ${formatDuration(eta)}`
}

/** What a user sees for a failure: the stable code and the actionable message. */
export function describeError(err: unknown): { code: string; message: string } {
  const typed = isHaulError(err) ? err : outOfFiles(err)
  if (typed !== undefined) return { code: typed.code, message: typed.message }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

/**
 * An EMFILE or ENFILE that no layer typed, as TOO_MANY_OPEN_FILES naming its path: above all one
 * from Node's loader, opening a chunk of the bundle that a command imports only when it needs it
 * (dist/bundle/get-folder-….js). Undefined for anything else.
 */
function outOfFiles(err: unknown): TooManyOpenFilesError | undefined {
  const path = (err as NodeJS.ErrnoException | undefined)?.path
  return tooManyOpenFiles(err, typeof path === 'string' ? path : undefined)
}

/**
 * `thrown` in the terms a CLI user acts on: TOO_MANY_OPEN_FILES (an untyped EMFILE or ENFILE
 * too) names the engine option `server.maxOpenFiles`, which a command that serves sets with
 * --max-open-files (`serves`) and one that does not cannot set at all. Anything else as it is.
 */
export function inCliTerms(thrown: unknown, serves: boolean): unknown {
  const err = isHaulError(thrown) ? thrown : (outOfFiles(thrown) ?? thrown)
  if (!isHaulError(err) || err.code !== 'TOO_MANY_OPEN_FILES') return err
  const flag = serves ? '--max-open-files <n>' : null
  const message = err.message.replace(openFilesAdvice(), openFilesAdvice(flag))
  return message === err.message ? err : new TooManyOpenFilesError(message, { cause: err })
}

/** `1 file`, `2 files`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** How human output names the metrics endpoint (`--metrics`). */
export function metricsLine(address: string): string {
  return `metrics: http://${address}/metrics`
}
