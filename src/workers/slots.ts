/** The abort race the pool uses; kept apart from pool.ts so the pool reads as what it does with threads. */
import { abortedBy } from '../util/slots.ts'

export { abortedBy }

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
