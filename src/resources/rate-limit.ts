/**
 * Bandwidth limits as token buckets (bytes per second with a burst), for
 * upload and download, global or per transfer.
 *
 * A bucket grants a `take(bytes)` as soon as it holds `min(bytes, burst)`
 * tokens and then subtracts all `bytes`, going into debt for a take larger
 * than the burst (a 1 MiB chunk under a 64 KiB burst). The debt is paid back
 * before the next grant, so over any interval T the bytes granted are at most
 * `burst + rate * T + one take`: a limit holds over time whatever the take
 * sizes. Waiters are served first come, first served; an aborted waiter leaves
 * the queue without taking anything.
 *
 * Limits compose: `chainLimiters(perTransfer, global)` takes from each in
 * turn, the narrow one first, so a transfer held back by its own limit does
 * not spend global tokens while it waits.
 */
import { ConfigInvalidError } from '../errors.ts'
import { throwIfAborted } from '../util/abort.ts'
import { checkBytes } from './memory-budget.ts'

export interface TakeOptions {
  signal?: AbortSignal
}

/** Anything bytes can be metered through: a bucket, a chain, a weighted flow. */
export interface RateLimiter {
  /** Resolves when `bytes` may be sent or received; rejects with AbortedError if `signal` aborts first. */
  take(bytes: number, opts?: TakeOptions): Promise<void>
  /**
   * Gives back `bytes` of a take whose bytes will not go after all (their request was cancelled
   * while they waited their turn), so the next waiter does not pay for them.
   */
  refund?(bytes: number): void
}

export interface TokenBucketOptions {
  /** Sustained rate, bytes per second. `Infinity` means unlimited. */
  rate: number
  /**
   * Bytes that may go at once after an idle spell (the bucket's depth).
   * @default max(64 KiB, rate / 10): a tenth of a second of traffic
   */
  burst?: number
  /** Clock in ms; injectable for tests. @default performance.now */
  now?: () => number
}

const KiB = 1024

export function verifyTokenBucketOptions(o: TokenBucketOptions): void {
  if (!(typeof o.rate === 'number' && o.rate > 0)) {
    throw new ConfigInvalidError(`rate limit must be a positive number of bytes per second, got ${o.rate}`)
  }
  if (o.burst !== undefined && !(Number.isSafeInteger(o.burst) && o.burst >= 1)) {
    throw new ConfigInvalidError(`rate limit burst must be a positive integer of bytes, got ${o.burst}`)
  }
}

interface Waiter {
  readonly bytes: number
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
  readonly signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

export class TokenBucket implements RateLimiter {
  #rate: number
  #burst: number
  readonly #now: () => number
  #tokens: number
  #stamp: number
  readonly #queue: Waiter[] = []
  #timer: NodeJS.Timeout | undefined
  /** Total bytes granted, for reports. */
  granted = 0

  constructor(opts: TokenBucketOptions) {
    verifyTokenBucketOptions(opts)
    this.#rate = opts.rate
    this.#burst = opts.burst ?? defaultBurst(opts.rate)
    this.#now = opts.now ?? (() => performance.now())
    this.#tokens = this.#burst
    this.#stamp = this.#now()
  }

  get rate(): number {
    return this.#rate
  }

  get burst(): number {
    return this.#burst
  }

  /** Waiting takes. */
  get waiting(): number {
    return this.#queue.length
  }

  /** Changes the rate (and burst, unless given) from now on; waiters are re-timed. */
  setRate(rate: number, burst?: number): void {
    verifyTokenBucketOptions(burst === undefined ? { rate } : { rate, burst })
    this.#refill()
    this.#rate = rate
    this.#burst = burst ?? defaultBurst(rate)
    this.#tokens = Math.min(this.#tokens, this.#burst)
    this.#schedule()
  }

  take(bytes: number, opts: TakeOptions = {}): Promise<void> {
    const { signal } = opts
    try {
      checkBytes(bytes)
      throwIfAborted(signal)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#queue.length === 0 && this.#tryGrant(bytes)) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { bytes, resolve, reject, signal, onAbort: undefined }
      if (signal !== undefined) {
        w.onAbort = () => {
          const i = this.#queue.indexOf(w)
          if (i >= 0) this.#queue.splice(i, 1)
          try {
            throwIfAborted(signal)
          } catch (err) {
            reject(err)
          }
          // The head may have left: whoever is next gets a fresh look.
          if (i === 0) this.#schedule()
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.#queue.push(w)
      if (this.#queue.length === 1) this.#schedule()
    })
  }

  /** Takes `bytes` now if the bucket holds them and no take waits; false otherwise, nothing taken. */
  tryTake(bytes: number): boolean {
    checkBytes(bytes)
    return this.#queue.length === 0 && this.#tryGrant(bytes)
  }

  /** See RateLimiter.refund: back into the bucket (at most its depth), and the next waiter looked at. */
  refund(bytes: number): void {
    checkBytes(bytes)
    this.#refill()
    this.#tokens = Math.min(this.#burst, this.#tokens + bytes)
    this.granted -= Math.min(bytes, this.granted)
    this.#schedule()
  }

  #refill(): void {
    const now = this.#now()
    if (this.#rate === Number.POSITIVE_INFINITY) this.#tokens = this.#burst
    else this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#stamp) * this.#rate) / 1000)
    this.#stamp = now
  }

  #tryGrant(bytes: number): boolean {
    this.#refill()
    if (this.#tokens < Math.min(bytes, this.#burst)) return false
    this.#tokens -= bytes
    this.granted += bytes
    return true
  }

  #schedule(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (;;) {
      const head = this.#queue[0]
      if (head === undefined) return
      if (!this.#tryGrant(head.bytes)) {
        const missing = Math.min(head.bytes, this.#burst) - this.#tokens
        const ms = Math.max(1, Math.ceil((missing * 1000) / this.#rate))
        this.#timer = setTimeout(() => this.#schedule(), ms)
        return
      }
      this.#queue.shift()
      if (head.onAbort !== undefined) head.signal?.removeEventListener('abort', head.onAbort)
      head.resolve()
    }
  }
}

function defaultBurst(rate: number): number {
  if (rate === Number.POSITIVE_INFINITY) return Number.MAX_SAFE_INTEGER
  return Math.max(64 * KiB, Math.ceil(rate / 10))
}

/** A limiter that never waits (no limit configured). */
export const unlimited: RateLimiter = {
  async take(bytes: number, opts: TakeOptions = {}): Promise<void> {
    checkBytes(bytes)
    throwIfAborted(opts.signal)
  },
}

/**
 * Takes from every limiter in turn (the order given: put the narrowest, e.g.
 * the per-transfer bucket, first). Undefined entries are skipped, so
 * `chainLimiters(perTransfer, global)` works whichever is configured.
 */
export function chainLimiters(...limiters: Array<RateLimiter | undefined>): RateLimiter {
  const list = limiters.filter((l): l is RateLimiter => l !== undefined && l !== unlimited)
  if (list.length === 0) return unlimited
  if (list.length === 1) return list[0]!
  return {
    async take(bytes: number, opts: TakeOptions = {}): Promise<void> {
      for (const l of list) await l.take(bytes, opts)
    },
    refund(bytes: number): void {
      for (const l of list) l.refund?.(bytes)
    },
  }
}

/** Bandwidth limits of an engine (bytes per second; undefined = unlimited). */
/** Engine option `limits`: each unlimited unless given (ranges: src/engine/config/table.ts). */
export interface RateLimitOptions {
  /** All uploads together (the serving side, before each chunk frame). */
  uploadBytesPerSec?: number
  /** All downloads together (the fetching side, before each request). */
  downloadBytesPerSec?: number
  /** Every transfer's own download limit, unless its fetch options say otherwise. */
  perTransferDownloadBytesPerSec?: number
  /** Burst of each bucket; unset, the bucket's own default (`TokenBucketOptions.burst`). */
  burstBytes?: number
}

/** A bucket for `rate`, or undefined when no limit is set. */
export function bucketFor(rate: number | undefined, burst?: number): TokenBucket | undefined {
  if (rate === undefined || rate === Number.POSITIVE_INFINITY) return undefined
  return new TokenBucket(burst === undefined ? { rate } : { rate, burst })
}
