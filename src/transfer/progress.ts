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
  /**
   * Bytes of chunks on their way: received, but not yet whole, so neither verified nor in
   * `bytesDone` (as they travel, before decompression). On a slow link a chunk takes seconds to
   * arrive, and these show it moving.
   */
  readonly bytesArriving: number
  /** Bytes per second fetched over the last few seconds, the bytes arriving included. */
  readonly rate: number
  /** Seconds left at the current rate; undefined until there is a rate. */
  readonly etaSeconds: number | undefined
  readonly elapsedSeconds: number
  /**
   * Present while the bytes an earlier run left are checked against the content id, before the
   * rest is fetched (a resume after a crash, or of a part file without a usable journal).
   */
  readonly check?: CheckProgress
}

/** The check of what an earlier run left at the destination, while it runs. */
export interface CheckProgress {
  /** Bytes read back and hashed so far, whether they matched or not. */
  readonly bytesChecked: number
  /**
   * Bytes the check reads in all. Exact for fixed-size chunks; for content-defined chunks of a
   * part of the file an estimate (chunks times their mean size) until the check's last report,
   * which gives the bytes it read.
   */
  readonly bytesToCheck: number
  readonly chunksChecked: number
  readonly chunksToCheck: number
  /** Bytes per second checked over the last few seconds. */
  readonly rate: number
  /** Seconds left of the check at the current rate; undefined until there is a rate. */
  readonly etaSeconds: number | undefined
  /** Since the check began. */
  readonly elapsedSeconds: number
}

const WINDOW_MS = 3000
const MAX_SAMPLES = 64

/**
 * The rate of a count that grows, over a sliding window (at least WINDOW_MS: longer while the
 * count grows in steps further apart than that). The sample ring is fixed-size: one sample per
 * `add` at most every WINDOW_MS/MAX_SAMPLES.
 */
class RateWindow {
  readonly #samples: Array<{ t: number; count: number }>

  constructor(t: number, count = 0) {
    this.#samples = [{ t, count }]
  }

  /**
   * Samples `count` at `t` when it changed: a sample taken between two steps (a report with
   * nothing new) would start a later window mid-gap, and a step over a window shorter than the
   * gap between steps reads faster than the count grows.
   */
  add(t: number, count: number): void {
    const last = this.#samples[this.#samples.length - 1]!
    if (count !== last.count && t - last.t >= WINDOW_MS / MAX_SAMPLES) {
      this.#samples.push({ t, count })
      if (this.#samples.length > MAX_SAMPLES) this.#samples.shift()
    }
  }

  rate(now: number, count: number): number {
    // The base is the newest sample at least WINDOW_MS old: on a link where a chunk takes longer
    // than the window, the rate spans the last chunks rather than reading 0 between them.
    while (this.#samples.length > 1 && now - this.#samples[1]!.t >= WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0]!
    const dt = (now - first.t) / 1000
    return dt > 0.05 ? (count - first.count) / dt : 0
  }
}

/** Seconds to do `left` at `rate`: 0 when nothing is left, undefined until there is a rate. */
function eta(left: number, rate: number): number | undefined {
  return rate > 0 ? left / rate : left === 0 ? 0 : undefined
}

interface Check {
  readonly started: number
  readonly window: RateWindow
  bytes: number
  chunks: number
  totalBytes: number
  readonly totalChunks: number
}

/**
 * Counts verified bytes and derives a rate over a sliding window (RateWindow).
 * Bytes kept from an earlier run (given to the constructor, or `keep`) count as
 * done but not as fetched: the rate, here and in the fetch's result, is of the
 * bytes this run moved. While those bytes are checked (`startCheck` to
 * `endCheck`), snapshots carry the check's own figures and rate.
 */
export class ProgressMeter {
  readonly totalBytes: number
  readonly totalChunks: number
  #bytes = 0
  #chunks = 0
  #kept = 0
  readonly #started = performance.now()
  /** Fetched bytes (done less kept) over time. */
  #fetched = new RateWindow(this.#started)
  #check: Check | undefined
  /** Reads the bytes of chunks on their way, while chunks are fetched (`arrivingFrom`). */
  #arriving: (() => number) | undefined

  /** `alreadyBytes` and `alreadyChunks`: kept from an earlier run (see `keep`). */
  constructor(totalBytes: number, totalChunks: number, alreadyBytes = 0, alreadyChunks = 0) {
    this.totalBytes = totalBytes
    this.totalChunks = totalChunks
    this.#bytes = alreadyBytes
    this.#kept = alreadyBytes
    this.#chunks = alreadyChunks
  }

  /** Chunks fetched and verified in this run. */
  add(bytes: number, chunks = 1): void {
    this.#bytes += bytes
    this.#chunks += chunks
    this.#fetched.add(performance.now(), this.#moved(this.#arrivingNow()))
  }

  /** Where the bytes of chunks on their way are read from while chunks are fetched; undefined: none. */
  arrivingFrom(source: (() => number) | undefined): void {
    this.#arriving = source
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

  /** The check of what an earlier run left begins: `bytes` in `chunks` to read back and hash. */
  startCheck(bytes: number, chunks: number): void {
    const started = performance.now()
    this.#check = {
      started,
      window: new RateWindow(started),
      bytes: 0,
      chunks: 0,
      totalBytes: bytes,
      totalChunks: chunks,
    }
  }

  /** A chunk of the check was hashed, matching or not. */
  checked(bytes: number): void {
    const c = this.#check
    if (c === undefined) return
    c.bytes += bytes
    c.chunks++
    c.window.add(performance.now(), c.bytes)
  }

  /**
   * Every chunk of the check was hashed: the bytes read become the total (where it was an
   * estimate), for the last snapshots of the check; `endCheck` then ends it.
   */
  checkComplete(): void {
    if (this.#check !== undefined) this.#check.totalBytes = this.#check.bytes
  }

  endCheck(): void {
    this.#check = undefined
    // The fetch's rate starts now: over the check's time, it would read as a fraction of itself.
    const now = performance.now()
    this.#fetched = new RateWindow(now, this.#moved(this.#arrivingNow()))
  }

  get bytesDone(): number {
    return this.#bytes
  }

  /** Bytes this run fetched: done less kept. */
  get fetchedBytes(): number {
    return this.#bytes - this.#kept
  }

  /** Bytes of chunks on their way, at most what is left to fetch. */
  #arrivingNow(): number {
    const arriving = this.#arriving?.() ?? 0
    return Math.max(0, Math.min(arriving, this.totalBytes - this.#bytes))
  }

  /** What the rate counts: bytes fetched, and those on their way. */
  #moved(arriving: number): number {
    return this.fetchedBytes + arriving
  }

  snapshot(): TransferProgress {
    const now = performance.now()
    const arriving = this.#arrivingNow()
    const moved = this.#moved(arriving)
    this.#fetched.add(now, moved)
    // A chunk whose bytes were counted arriving is briefly counted neither way while it is
    // verified, and a cut drops what had arrived of one: the count can step back.
    const rate = Math.max(0, this.#fetched.rate(now, moved))
    const c = this.#check
    return {
      bytesDone: this.#bytes,
      totalBytes: this.totalBytes,
      chunksDone: this.#chunks,
      totalChunks: this.totalChunks,
      keptBytes: this.#kept,
      bytesArriving: arriving,
      rate,
      etaSeconds: eta(this.totalBytes - this.#bytes - arriving, rate),
      elapsedSeconds: (now - this.#started) / 1000,
      ...(c === undefined ? {} : { check: checkSnapshot(c, now) }),
    }
  }
}

function checkSnapshot(c: Check, now: number): CheckProgress {
  const rate = c.window.rate(now, c.bytes)
  return {
    // An estimated total may fall short of the bytes read until the check completes.
    bytesChecked: Math.min(c.bytes, c.totalBytes),
    bytesToCheck: c.totalBytes,
    chunksChecked: c.chunks,
    chunksToCheck: c.totalChunks,
    rate,
    etaSeconds: eta(c.totalBytes - c.bytes, rate),
    elapsedSeconds: (now - c.started) / 1000,
  }
}
