/** Abort helpers shared by the slot limiter, the worker pool and the memory budgets. */
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
