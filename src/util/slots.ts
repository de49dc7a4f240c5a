import { type HaulError, TooManyRequestsError } from '../errors.ts'
import { abortedBy } from './abort.ts'

interface Waiter {
  resolve: () => void
  reject: (err: HaulError) => void
}

/**
 * A counting semaphore with a bounded waiting line: `acquire` beyond `limit`
 * waits in FIFO order, and beyond `maxWaiters` fails at once with
 * TooManyRequestsError instead of queueing without bound. Shared by the
 * network (streams per peer) and the worker pool (tasks handed to threads).
 */
export class Slots {
  readonly maxWaiters: number
  #limit: number
  #active = 0
  readonly #waiters: Waiter[] = []

  constructor(limit: number, maxWaiters = Number.POSITIVE_INFINITY) {
    this.#limit = limit
    this.maxWaiters = maxWaiters
  }

  get limit(): number {
    return this.#limit
  }

  /**
   * Changes how many slots may be held. Raising it lets waiters in at once; lowering it takes
   * effect as holders release (nobody is preempted).
   */
  setLimit(limit: number): void {
    this.#limit = limit
    while (this.#active < this.#limit && this.#waiters.length > 0) {
      this.#active++
      this.#waiters.shift()!.resolve()
    }
  }

  get active(): number {
    return this.#active
  }

  get waiting(): number {
    return this.#waiters.length
  }

  /** True when nothing holds or waits for a slot. */
  get idle(): boolean {
    return this.#active === 0 && this.#waiters.length === 0
  }

  /** Resolves once a slot is held; AbortedError if `signal` aborts first; TooManyRequestsError if the line is full. */
  acquire(opts: { signal?: AbortSignal; what?: string } = {}): Promise<void> {
    const { signal } = opts
    if (signal?.aborted) return Promise.reject(abortedBy(signal))
    if (this.#active < this.#limit && this.#waiters.length === 0) {
      this.#active++
      return Promise.resolve()
    }
    if (this.#waiters.length >= this.maxWaiters) {
      return Promise.reject(
        new TooManyRequestsError(
          `${opts.what ?? 'slots'}: ${this.#limit} in use and ${this.maxWaiters} already waiting; retry later`,
        ),
      )
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const onAbort = (): void => {
      const i = this.#waiters.indexOf(waiter)
      if (i !== -1) this.#waiters.splice(i, 1)
      reject(abortedBy(signal!))
    }
    const waiter: Waiter = {
      resolve: () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      },
      reject: (err) => {
        signal?.removeEventListener('abort', onAbort)
        reject(err)
      },
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    this.#waiters.push(waiter)
    return promise
  }

  /** Returns a slot; the longest waiter, if any, takes it over directly (unless the limit was lowered below what is held). */
  release(): void {
    if (this.#active <= this.#limit) {
      const next = this.#waiters.shift()
      if (next !== undefined) {
        next.resolve()
        return
      }
    }
    if (this.#active > 0) this.#active--
  }

  /** Fails every waiter (used on shutdown). Held slots stay held until released. */
  rejectWaiters(err: HaulError): void {
    for (const w of this.#waiters.splice(0)) w.reject(err)
  }
}
