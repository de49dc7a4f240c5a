/**
 * The host's hold on the engine thread: its Worker, and what happens to calls when it ends.
 * comlink leaves a call pending forever when the thread on the other side is gone; every call
 * goes through `race`, so one pending when the thread exits rejects instead: with InternalError
 * when the thread died (an uncaught error, a crash), with AbortedError when `close` ended it.
 */
import type { Worker } from 'node:worker_threads'
import { AbortedError, type HaulError, InternalError } from '../../errors.ts'

export class Link {
  readonly worker: Worker
  /** Why the thread is gone, once it is; every call since rejects with it. */
  #failure: HaulError | undefined
  #closing = false
  #lastError: unknown
  readonly #gone: Promise<never>
  #fail!: (err: HaulError) => void

  constructor(worker: Worker) {
    this.worker = worker
    this.#gone = new Promise<never>((_, reject) => {
      this.#fail = reject
    })
    // A gone thread is only an error to calls that race it.
    this.#gone.catch(() => {})
    worker.on('error', (err) => {
      this.#lastError = err
    })
    worker.once('exit', (code) => {
      const why = this.#lastError instanceof Error ? `: ${this.#lastError.message}` : ''
      this.#failure = this.#closing
        ? new AbortedError('the engine is stopped')
        : new InternalError(`the engine thread exited (code ${code})${why}`, { cause: this.#lastError })
      this.#fail(this.#failure)
    })
  }

  /** Set once the thread has died rather than been closed. */
  get failure(): HaulError | undefined {
    return this.#closing ? undefined : this.#failure
  }

  /** `call`, or the reason the thread ended if it ends first. */
  race<T>(call: Promise<T>): Promise<T> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    return Promise.race([call, this.#gone])
  }

  /** Ends the thread; calls still pending reject with ABORTED. */
  async close(): Promise<void> {
    this.#closing = true
    await this.worker.terminate()
  }
}
