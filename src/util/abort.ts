/** Abort helpers shared by the slot limiter, the worker pool, the memory budgets and DHT routing. */
import { AbortedError } from '../errors.ts'

/** The AbortedError for `signal`, its reason kept as the cause. */
export function abortedBy(signal: AbortSignal): AbortedError {
  return new AbortedError(undefined, { cause: signal.reason })
}

/** Throws `AbortedError` (cause: the signal's reason) if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedBy(signal)
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

/** Waits `ms`, or less when `signal` aborts (never throws). */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * `task`, marked as handled now because it is awaited later, where its failure is seen (a queue
 * of work in flight). Without it, a cancel that rejects several queued tasks while the caller
 * waits on something else ends the process with an unhandled rejection.
 */
export function awaitedLater<T>(task: Promise<T>): Promise<T> {
  task.catch(() => {})
  return task
}
