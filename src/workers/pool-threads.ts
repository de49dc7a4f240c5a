/**
 * The threads behind a WorkerPool: Piscina with one thread from the start and more while tasks
 * wait, a slot per task handed to it, and a thread's failure as a HaulError. WorkerPool (pool.ts)
 * checks each call's arguments and builds its message; this runs the message.
 *
 * Backpressure: at most `threads + maxQueue` tasks are handed to Piscina at a time. Further
 * callers wait in FIFO order for a slot instead of Piscina's queue-full error; they are bounded by
 * the callers themselves (each holds a chunk buffer counted against the engine's memory budget).
 *
 * Cancellation: Piscina kills the thread when a running task is aborted, so the signal is never
 * passed to it. An aborted call rejects with AbortedError at once; a task already handed to
 * Piscina runs to the end, its slot stays taken until then, and its result is discarded.
 */
import { setMaxListeners } from 'node:events'
import { Piscina } from 'piscina'
import {
  AbortedError,
  type HaulError,
  InternalError,
  InvalidArgumentError,
  TooManyOpenFilesError,
} from '../errors.ts'
import { abortedBy, raceAbort } from '../util/abort.ts'
import { threadFile } from '../util/dist-file.ts'
import { Slots } from '../util/slots.ts'
import type { AnyReply, ReplyFor, WorkerRequest } from './messages.ts'
import { errorFromReply } from './pool-handoff.ts'

/**
 * A thread beyond the first starts when tasks wait for one and ends after this long without a
 * task. Starting a thread costs ~100 ms of CPU (Node's bootstrap and the worker's modules); a
 * `haul get` of a 6-byte file, which needs one, took 513–533 ms against 582–619 ms with two
 * threads started up front (medians of 15, on two cores).
 */
const IDLE_THREAD_MS = 30_000

/** The Piscina threads and the slots of the tasks handed to them (see the module comment). */
export class PoolThreads {
  readonly #threads: number
  readonly #piscina: Piscina<WorkerRequest, AnyReply>
  /** One slot per task handed to Piscina, held until that task finishes (even if its caller left). */
  readonly #slots: Slots
  #destroyed = false
  /**
   * The signal every task is handed to Piscina with: aborted, its reason the thread's failure,
   * when no thread is left to run the tasks queued (see the 'error' listener), then replaced.
   */
  #unstartable = unstartable()

  /** `threads` and `maxQueue` as verifyWorkerPoolOptions returns them. */
  constructor(threads: number, maxQueue: number) {
    this.#threads = threads
    this.#slots = new Slots(threads + maxQueue)
    this.#piscina = new Piscina({
      filename: workerFile(),
      name: 'handle',
      // One thread from the start, the others when two tasks wait at once (IDLE_THREAD_MS).
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: IDLE_THREAD_MS,
      // Workers hold no data between tasks; a small young generation makes V8 collect
      // the per-task garbage (hash contexts, replies) early instead of letting each
      // isolate's heap drift upward over a long run.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
      // Never reached: #slots keeps at most threads + maxQueue tasks in Piscina. Kept as a tripwire.
      maxQueue: threads + maxQueue,
    })
    // A thread that fails to start with no task of its own (out of file descriptors, a working
    // folder deleted under the process) is reported here; unheard, it would end the process. The
    // next task starts one again, and fails with the reason (threadFailure) if it still cannot.
    // Tasks already queued wait for a thread Piscina no longer starts once one failed in its
    // bootstrap: with no thread left, they fail now with the reason instead of waiting for ever.
    this.#piscina.on('error', (err: unknown) => {
      if (this.#piscina.threads.length > 0) return
      const queued = this.#unstartable
      this.#unstartable = unstartable()
      queued.abort(threadFailure(err))
    })
  }

  get threads(): number {
    return this.#threads
  }

  /** Threads started now: one from the start, up to `threads` while tasks wait (IDLE_THREAD_MS). */
  get running(): number {
    return this.#piscina.threads.length
  }

  /** Tasks accepted but not running: waiting for a slot, or queued inside Piscina. */
  get queueSize(): number {
    return this.#slots.waiting + this.#piscina.queueSize
  }

  /** Tasks handed to Piscina and not yet finished (including ones whose caller aborted). */
  get inFlight(): number {
    return this.#slots.active
  }

  /** Stops the threads. Waiting and running calls reject with AbortedError; later calls too. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#slots.rejectWaiters(new AbortedError('worker pool destroyed'))
    await this.#piscina.destroy()
  }

  /** Checked before any buffer is moved, so a refused call leaves the caller's buffers intact. */
  checkStart(signal: AbortSignal | undefined): void {
    if (this.#destroyed) throw new AbortedError('worker pool destroyed')
    if (signal?.aborted) throw abortedBy(signal)
  }

  /**
   * Hands `req` to a thread once a slot is free, its `transfer` buffers moved; resolves with the
   * reply of the same kind, or rejects with the worker's error as its HaulError class.
   */
  async run<K extends keyof ReplyFor>(
    req: Extract<WorkerRequest, { kind: K }>,
    transfer: ArrayBuffer[],
    signal: AbortSignal | undefined,
  ): Promise<ReplyFor[K]> {
    await this.#slots.acquire(signal === undefined ? {} : { signal })
    // Aborted or destroyed while the slot was being handed over: the task was never dispatched.
    if (this.#destroyed || signal?.aborted) {
      this.#slots.release()
      throw signal?.aborted ? abortedBy(signal) : new AbortedError('worker pool destroyed')
    }
    // Aborted only when no thread is left to run it (a queued task: no worker is cut short).
    const unstarted = this.#unstartable.signal
    const task = this.#piscina
      .run(req, { transferList: transfer, signal: unstarted })
      .finally(() => this.#slots.release())
    let reply: AnyReply
    try {
      reply = await raceAbort(task, signal)
    } catch (err) {
      if (unstarted.aborted) throw unstarted.reason
      if (err instanceof AbortedError) throw err
      if (this.#destroyed) throw new AbortedError('worker pool destroyed', { cause: err })
      throw threadFailure(err)
    }
    if (reply.kind === 'error') throw errorFromReply(reply)
    if (reply.kind !== req.kind) throw new InternalError(`worker answered ${reply.kind} to ${req.kind}`)
    return reply as ReplyFor[K]
  }
}

/**
 * Worker threads always run the compiled JavaScript (`npm run build`, run by
 * `npm ci` and `npm test`): a thread that loads `.ts` instantiates Node's type
 * stripper in its own isolate, ~17 MB more per thread (measured: 2 idle workers
 * 108 vs 75 MB RSS): dist/workers/worker.js, whether this runs compiled, bundled or
 * from `src/` (tests, benchmarks).
 */
function workerFile(): string {
  return threadFile('workers/worker.js', import.meta.url, 'worker thread code')
}

/** The signal of the tasks queued until no thread is left to run them (one listener per task). */
function unstartable(): AbortController {
  const c = new AbortController()
  setMaxListeners(0, c.signal)
  return c
}

/**
 * A task's failure in Piscina as a HaulError: a thread that could not start for lack of file
 * descriptors (`Worker initialization failure: EMFILE`, or a module it could not open) is
 * TOO_MANY_OPEN_FILES, saying what to raise; anything else INTERNAL.
 */
export function threadFailure(err: unknown): HaulError {
  const text = String((err as Error)?.message || err)
  if (/\bE[MN]FILE\b|too many open files/i.test(text)) {
    return new TooManyOpenFilesError(
      `a worker thread could not start: too many open files (${text}): raise the limit of open files (\`ulimit -n\`)`,
      { cause: err },
    )
  }
  if (/\buv_cwd\b|process\.cwd failed/.test(text)) {
    return new InvalidArgumentError(
      `a worker thread could not start: the current folder of this process no longer exists (${text}): change to an existing folder and start again`,
      { cause: err },
    )
  }
  return new InternalError(`worker thread failed: ${text}`, { cause: err })
}
