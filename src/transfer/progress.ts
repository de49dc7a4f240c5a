/** A snapshot of one transfer's progress, as handed to `onProgress` and printed by the CLI. */
export interface TransferProgress {
  readonly bytesDone: number
  readonly totalBytes: number
  readonly chunksDone: number
  readonly totalChunks: number
  /**
   * Of `bytesDone`, the bytes an earlier run left at the destination that this one verified and
   * kept (from the journal, or re-hashed): not fetched again, and not part of `rate`.
   */
  readonly keptBytes: number
  /** Bytes per second fetched over the last few seconds. */
  readonly rate: number
  /** Seconds left at the current rate; undefined until there is a rate. */
  readonly etaSeconds: number | undefined
  readonly elapsedSeconds: number
}

const WINDOW_MS = 3000
const MAX_SAMPLES = 64

/**
 * Counts verified bytes and derives a rate over a sliding window (at least WINDOW_MS: longer
 * while verified bytes arrive further apart than that). The sample
 * ring is fixed-size: one sample per `add` at most every WINDOW_MS/MAX_SAMPLES.
 * Bytes kept from an earlier run (given to the constructor, or `keep`) count as
 * done but not as fetched: the rate, here and in the fetch's result, is of the
 * bytes this run moved.
 */
export class ProgressMeter {
  readonly totalBytes: number
  readonly totalChunks: number
  #bytes = 0
  #chunks = 0
  #kept = 0
  readonly #started = performance.now()
  /** Fetched bytes (done less kept) over time. */
  readonly #samples: Array<{ t: number; fetched: number }> = []

  /** `alreadyBytes` and `alreadyChunks`: kept from an earlier run (see `keep`). */
  constructor(totalBytes: number, totalChunks: number, alreadyBytes = 0, alreadyChunks = 0) {
    this.totalBytes = totalBytes
    this.totalChunks = totalChunks
    this.#bytes = alreadyBytes
    this.#kept = alreadyBytes
    this.#chunks = alreadyChunks
    this.#samples.push({ t: this.#started, fetched: 0 })
  }

  /** Chunks fetched and verified in this run. */
  add(bytes: number, chunks = 1): void {
    this.#bytes += bytes
    this.#chunks += chunks
    const t = performance.now()
    const last = this.#samples[this.#samples.length - 1]!
    if (t - last.t >= WINDOW_MS / MAX_SAMPLES) {
      this.#samples.push({ t, fetched: this.fetchedBytes })
      if (this.#samples.length > MAX_SAMPLES) this.#samples.shift()
    }
  }

  /** Chunks an earlier run left at the destination, verified now (a re-hash): done, not fetched. */
  keep(bytes: number, chunks = 1): void {
    this.#bytes += bytes
    this.#kept += bytes
    this.#chunks += chunks
  }

  /** Kept chunks found not to hold their bytes after all (a re-check after a crash): to fetch. */
  unkeep(bytes: number, chunks = 1): void {
    this.#bytes -= bytes
    this.#kept -= bytes
    this.#chunks -= chunks
  }

  get bytesDone(): number {
    return this.#bytes
  }

  /** Bytes this run fetched: done less kept. */
  get fetchedBytes(): number {
    return this.#bytes - this.#kept
  }

  snapshot(): TransferProgress {
    const now = performance.now()
    // The base is the newest sample at least WINDOW_MS old: on a link where a chunk takes longer
    // than the window, the rate spans the last chunks rather than reading 0 between them.
    while (this.#samples.length > 1 && now - this.#samples[1]!.t >= WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0]!
    const dt = (now - first.t) / 1000
    const rate = dt > 0.05 ? (this.fetchedBytes - first.fetched) / dt : 0
    const left = this.totalBytes - this.#bytes
    return {
      bytesDone: this.#bytes,
      totalBytes: this.totalBytes,
      chunksDone: this.#chunks,
      totalChunks: this.totalChunks,
      keptBytes: this.#kept,
      rate,
      etaSeconds: rate > 0 ? left / rate : left === 0 ? 0 : undefined,
      elapsedSeconds: (now - this.#started) / 1000,
    }
  }
}
