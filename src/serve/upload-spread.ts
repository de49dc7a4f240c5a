/**
 * The order in which chunks waiting on an engine's upload limit go out: the chunk this engine has
 * sent the fewest times first, so that a seeder whose uplink is the bottleneck puts chunks the
 * swarm lacks into it before second copies of chunks it already has.
 *
 * Why: receivers each keep a couple of chunks requested from a seeder (peer-pipeline.ts), so fifty
 * receivers of one slow seeder keep some 100 chunks queued there — minutes of its uplink. First
 * come, first served, a chunk picked as rare by its receiver went out minutes later, when other
 * receivers could give it; meanwhile chunks nobody had waited. In this order those sends wait
 * instead, and the receiver gets the chunk from a peer and cancels them (serve-chunks.ts skips a
 * cancelled chunk and refunds its turn).
 *
 * Order: a waiter's key is its arrival time plus `spreadMs × n / (n + 1)`, n the times its chunk
 * was sent; the smallest key goes next. A chunk never sent goes before one sent once that arrived
 * up to spreadMs / 2 earlier, one sent once before one sent twice that arrived up to spreadMs / 6
 * earlier, and so on. No chunk waits a whole spreadMs longer than first come, first served would
 * have it wait, however often it was sent: a receiver that only this engine can serve (several
 * fetching one file without swarming) is slowed, never starved past its request timeout.
 * spreadMs = 0 is first come, first served.
 *
 * One take is passed to the limiter beneath at a time: the order of grants is what this decides.
 * Bounds: one waiter per serving stream (each sends one chunk at a time), and send counts for the
 * `maxTracked` chunks sent most recently (the least recently sent is forgotten first, and looks
 * never sent).
 */
import { checkBytes } from '../resources/memory-budget.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import { abortedBy, throwIfAborted } from '../util/abort.ts'

export interface UploadSpreadOptions {
  /** Bound of the extra wait of a chunk this engine has sent already (see the order at the top). 0: first come, first served. */
  readonly spreadMs: number
  /** Chunks whose send counts are kept. */
  readonly maxTracked: number
  /** Clock in ms; injectable for tests. @default performance.now */
  readonly now?: () => number
}

interface Waiter {
  readonly chunk: string
  readonly bytes: number
  readonly arrival: number
  readonly signal: AbortSignal
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
  readonly onAbort: () => void
}

export class UploadSpread {
  readonly #limiter: RateLimiter
  readonly #o: Required<UploadSpreadOptions>
  readonly #waiting: Waiter[] = []
  /** Chunk → times sent; in order of the last send (the first entry is forgotten first). */
  readonly #sent = new Map<string, number>()
  /** A waiter is taking from the limiter beneath. */
  #granting = false

  constructor(limiter: RateLimiter, o: UploadSpreadOptions) {
    this.#limiter = limiter
    this.#o = { now: () => performance.now(), ...o }
  }

  /** Chunks waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length
  }

  /** Times chunk `chunk` went out (as far as remembered). */
  sentCount(chunk: string): number {
    return this.#sent.get(chunk) ?? 0
  }

  /**
   * Resolves when the `bytes` of `chunk` (a content id and chunk index: any string naming the
   * chunk) may go, counting it sent; rejects with AbortedError if `signal` aborts first.
   */
  take(chunk: string, bytes: number, signal: AbortSignal): Promise<void> {
    try {
      checkBytes(bytes)
      throwIfAborted(signal)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        chunk,
        bytes,
        arrival: this.#o.now(),
        signal,
        resolve,
        reject,
        onAbort: () => {
          const i = this.#waiting.indexOf(w)
          if (i >= 0) {
            this.#waiting.splice(i, 1)
            reject(abortedBy(signal))
          }
        },
      }
      signal.addEventListener('abort', w.onAbort, { once: true })
      this.#waiting.push(w)
      this.#next()
    })
  }

  /** A granted chunk did not go after all (its request was cancelled): its count and its bytes come back. */
  refund(chunk: string, bytes: number): void {
    const n = this.#sent.get(chunk)
    if (n !== undefined) {
      if (n <= 1) this.#sent.delete(chunk)
      else this.#sent.set(chunk, n - 1)
    }
    this.#limiter.refund?.(bytes)
  }

  #next(): void {
    if (this.#granting || this.#waiting.length === 0) return
    const w = this.#pick()
    w.signal.removeEventListener('abort', w.onAbort)
    this.#granting = true
    this.#limiter.take(w.bytes, { signal: w.signal }).then(
      () => {
        this.#granting = false
        this.#count(w.chunk)
        w.resolve()
        this.#next()
      },
      (err: unknown) => {
        this.#granting = false
        w.reject(err)
        this.#next()
      },
    )
  }

  /** Removes and returns the waiter with the smallest key. */
  #pick(): Waiter {
    const spread = this.#o.spreadMs
    let best = 0
    let bestKey = Number.POSITIVE_INFINITY
    for (let i = 0; i < this.#waiting.length; i++) {
      const w = this.#waiting[i]!
      // Waiters are in arrival order and a key is never below its arrival: none further can win.
      if (w.arrival >= bestKey) break
      const n = this.sentCount(w.chunk)
      const key = w.arrival + (spread * n) / (n + 1)
      if (key < bestKey) {
        best = i
        bestKey = key
      }
    }
    return this.#waiting.splice(best, 1)[0]!
  }

  #count(chunk: string): void {
    const n = this.#sent.get(chunk) ?? 0
    this.#sent.delete(chunk)
    this.#sent.set(chunk, n + 1)
    if (this.#sent.size > this.#o.maxTracked) {
      const oldest = this.#sent.keys().next().value
      if (oldest !== undefined) this.#sent.delete(oldest)
    }
  }
}
