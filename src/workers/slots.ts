/**
 * A counting semaphore with abortable FIFO waits, and the abort race the pool uses. Kept apart
 * from pool.ts so the pool reads as what it does with threads, not how it counts.
 */
import { AbortedError } from '../errors.ts'

export function abortedBy(signal: AbortSignal): AbortedError {
  return new AbortedError(undefined, { cause: signal.reason })
}

interface Waiter {
  resolve(): void
  reject(err: Error): void
}

/** At most `limit` holders; later `acquire` calls wait in FIFO order. */
export class Slots {
  readonly #limit: number
  #used = 0
  readonly #waiters: Waiter[] = []

  constructor(limit: number) {
    this.#limit = limit
  }

  /** Slots held (acquired and not released). */
  get used(): number {
    return this.#used
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Resolves once a slot is held; rejects with AbortedError if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortedBy(signal))
    if (this.#used < this.#limit && this.#waiters.length === 0) {
      this.#used++
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
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
    })
  }

  /** Hands the slot to the longest waiter (so `used` stays counted for it), or frees it. */
  release(): void {
    const next = this.#waiters.shift()
    if (next === undefined) this.#used--
    else next.resolve()
  }

  /** Rejects every waiter with `err` (on shutdown). */
  rejectWaiters(err: Error): void {
    for (const w of this.#waiters.splice(0)) w.reject(err)
  }
}

/** Settles with `task`, or rejects with AbortedError as soon as `signal` aborts (task keeps running). */
export function raceAbort<T>(task: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return task
  // The task may reject after the caller has gone: observe it so it is not an unhandled rejection.
  task.catch(() => {})
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortedBy(signal))
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    task.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}
