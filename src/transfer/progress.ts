/** A snapshot of one transfer's progress, as handed to `onProgress` and printed by the CLI. */
export interface TransferProgress {
  readonly bytesDone: number
  readonly totalBytes: number
  readonly chunksDone: number
  readonly totalChunks: number
  /** Bytes per second over the last few seconds. */
  readonly rate: number
  /** Seconds left at the current rate; undefined until there is a rate. */
  readonly etaSeconds: number | undefined
  readonly elapsedSeconds: number
}

const WINDOW_MS = 3000
const MAX_SAMPLES = 64

/**
 * Counts verified bytes and derives a rate over a sliding window. The sample
 * ring is fixed-size: one sample per `add` at most every WINDOW_MS/MAX_SAMPLES.
 */
export class ProgressMeter {
  readonly totalBytes: number
  readonly totalChunks: number
  #bytes = 0
  #chunks = 0
  readonly #started = performance.now()
  readonly #samples: Array<{ t: number; bytes: number }> = []

  constructor(totalBytes: number, totalChunks: number, alreadyBytes = 0, alreadyChunks = 0) {
    this.totalBytes = totalBytes
    this.totalChunks = totalChunks
    this.#bytes = alreadyBytes
    this.#chunks = alreadyChunks
    this.#samples.push({ t: this.#started, bytes: alreadyBytes })
  }

  add(bytes: number, chunks = 1): void {
    this.#bytes += bytes
    this.#chunks += chunks
    const t = performance.now()
    const last = this.#samples[this.#samples.length - 1]!
    if (t - last.t >= WINDOW_MS / MAX_SAMPLES) {
      this.#samples.push({ t, bytes: this.#bytes })
      if (this.#samples.length > MAX_SAMPLES) this.#samples.shift()
    }
  }

  get bytesDone(): number {
    return this.#bytes
  }

  snapshot(): TransferProgress {
    const now = performance.now()
    while (this.#samples.length > 1 && now - this.#samples[0]!.t > WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0]!
    const dt = (now - first.t) / 1000
    const rate = dt > 0.05 ? (this.#bytes - first.bytes) / dt : 0
    const left = this.totalBytes - this.#bytes
    return {
      bytesDone: this.#bytes,
      totalBytes: this.totalBytes,
      chunksDone: this.#chunks,
      totalChunks: this.totalChunks,
      rate,
      etaSeconds: rate > 0 ? left / rate : left === 0 ? 0 : undefined,
      elapsedSeconds: (now - this.#started) / 1000,
    }
  }
}
