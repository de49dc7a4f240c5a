import type { RetryInfo } from '../transfer/retry.ts'
import { escapeControls, safeJson } from '../util/safe-text.ts'
import { describeError, formatBytes } from './format.ts'
import { write } from './signals.ts'

/** Whether a live progress line stands unfinished on the terminal (one terminal, one line). */
let barShown = false

/** Ends a live progress line, if one is drawn, so what follows starts on its own line. */
export function endProgressLine(): void {
  if (barShown) write(process.stderr, '\n')
  barShown = false
}

/**
 * Human output (a live progress line on a terminal, occasional lines when
 * piped) or newline-delimited JSON events for scripts — never both. Either way
 * no text reaches the terminal raw: a message or a path may come from a peer
 * (src/util/safe-text.ts), so human lines show control characters as escapes
 * and JSON lines escape what JSON.stringify leaves raw.
 */
export class Output {
  readonly json: boolean
  readonly #tty: boolean
  #lastLine = 0

  constructor(json: boolean) {
    this.json = json
    this.#tty = process.stderr.isTTY === true
  }

  event(e: Record<string, unknown>): void {
    if (this.json) write(process.stdout, `${safeJson(e)}\n`)
  }

  /** Prints `text`; its own line breaks stay, any other control character is shown escaped. */
  human(text: string): void {
    if (!this.json) write(process.stdout, `${text.split('\n').map(escapeControls).join('\n')}\n`)
  }

  /** A transient failure the transfer retries: a line, and a `retry` event. */
  retry(info: RetryInfo): void {
    const { code, message } = describeError(info.error)
    // The CLI runs with the default retry.maxStallMs (5 min: pinned in test/engine/config.test.ts).
    const outage = !Number.isFinite(info.maxAttempts)
    this.event({
      event: 'retry',
      attempt: info.attempt,
      // null while an outage is ridden out (see RetryInfo.maxAttempts).
      maxAttempts: outage ? null : info.maxAttempts,
      delayMs: info.delayMs,
      code,
      message,
    })
    this.done()
    const which = outage
      ? `retry ${info.attempt} (the peer was reached before: retrying while it is away, until the transfer has gone 5 min without progress)`
      : `retry ${info.attempt}/${info.maxAttempts}`
    this.human(
      `connection problem [${code}]: ${escapeControls(message)}; ${which} in ${(info.delayMs / 1000).toFixed(1)} s`,
    )
  }

  /** Redraws the progress line in place on a terminal; once every 2 s otherwise. */
  bar(line: string): void {
    if (this.json) return
    const now = Date.now()
    if (this.#tty) {
      if (now - this.#lastLine < 100) return
      write(process.stderr, `\r${line}\x1b[K`)
      barShown = true
    } else {
      if (now - this.#lastLine < 2000) return
      write(process.stderr, `${line}\n`)
    }
    this.#lastLine = now
  }

  #lastEvent = 0

  /** Progress of a phase; JSON events at most every 250 ms plus the last one. */
  progressBytes(label: string, done: number, total: number): void {
    const now = Date.now()
    if (done === total || now - this.#lastEvent >= 250) {
      this.#lastEvent = now
      this.event({ event: label, bytesDone: done, totalBytes: total })
    }
    const pct = total === 0 ? 100 : (done / total) * 100
    this.bar(`${label} ${pct.toFixed(1)}%  ${formatBytes(done)} / ${formatBytes(total)}`)
  }

  /** Ends the live line so the summary starts on its own line. */
  done(): void {
    endProgressLine()
  }
}
