/**
 * WorkerPool: CPU work (SHA-256, compression, content-defined chunking) on Piscina worker threads.
 *
 * Ownership: every buffer handed to a method is moved, synchronously, during the call (the
 * caller's view is detached at once, `byteLength === 0`) and comes back in the result, so it can
 * be recycled. A buffer must own its whole ArrayBuffer; moving a view of a shared slab would
 * detach unrelated data, so that is an InvalidArgumentError. On rejection the buffers are gone.
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
import { verifyCdcSizes } from '../chunking/params.ts'
import {
  AbortedError,
  CodecUnsupportedError,
  type HaulError,
  InternalError,
  InvalidArgumentError,
  TooManyOpenFilesError,
} from '../errors.ts'
import { CODECS, type Codec } from '../types.ts'
import { abortedBy, raceAbort } from '../util/abort.ts'
import { threadFile } from '../util/dist-file.ts'
import { Slots } from '../util/slots.ts'
import { CODEC_POLICIES, type CodecPolicy, MAX_RAW_LENGTH } from './codecs.ts'
import {
  type AnyReply,
  type CdcParams,
  type CutRequest,
  type ReplyFor,
  SHA256_BYTES,
  type WorkerRequest,
} from './messages.ts'
import { checkLength, checkOwned, errorFromReply, splitHashes, take } from './pool-handoff.ts'
import {
  type DecodeOptions,
  type EncodeOptions,
  type LengthOptions,
  type TaskOptions,
  verifyWorkerPoolOptions,
  type WorkerPoolOptions,
} from './pool-options.ts'

/**
 * A thread beyond the first starts when tasks wait for one and ends after this long without a
 * task. Starting a thread costs ~100 ms of CPU (Node's bootstrap and the worker's modules); a
 * `haul get` of a 6-byte file, which needs one, took 513–533 ms against 582–619 ms with two
 * threads started up front (medians of 15, on two cores).
 */
const IDLE_THREAD_MS = 30_000

export interface EncodeResult {
  /** SHA-256 of the plain bytes; null when `hash: false` was asked. */
  hash: Uint8Array | null
  codec: Codec
  /**
   * The compressed bytes, exactly a buffer of their own, or a view of `buf` (`buf` itself at
   * full length) for `none`.
   */
  payload: Uint8Array
  buf: Uint8Array
}
export interface CdcResult {
  lengths: number[]
  /** One SHA-256 per chunk: 32-byte views of one shared buffer. */
  hashes: Uint8Array[]
  /** Bytes of `buf` covered by `lengths`; the rest must be carried into the next call. */
  consumed: number
  buf: Uint8Array
}

export class WorkerPool {
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

  constructor(opts?: WorkerPoolOptions) {
    const { threads, maxQueue } = verifyWorkerPoolOptions(opts)
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

  /** SHA-256 of `buf.subarray(0, length)`; `buf` is moved and comes back. */
  async hash(buf: Uint8Array, opts?: LengthOptions): Promise<{ hash: Uint8Array; buf: Uint8Array }> {
    const { hashes, buffers } = await this.hashBatch([buf], {
      ...(opts?.signal ? { signal: opts.signal } : {}),
      ...(opts?.length !== undefined ? { lengths: [opts.length] } : {}),
    })
    return { hash: hashes[0]!, buf: buffers[0]! }
  }

  /**
   * SHA-256 of each buffer in one message (small chunks share the hop); buffers are moved and
   * come back in `buffers`. Each must own a distinct ArrayBuffer.
   */
  async hashBatch(
    bufs: readonly Uint8Array[],
    opts?: TaskOptions & { lengths?: readonly number[] },
  ): Promise<{ hashes: Uint8Array[]; buffers: Uint8Array[] }> {
    const lengths = opts?.lengths ?? bufs.map((b) => b?.length)
    if (lengths.length !== bufs.length) throw new InvalidArgumentError('lengths must match bufs')
    const seen = new Set<ArrayBufferLike>()
    bufs.forEach((b, i) => {
      checkOwned(b, `bufs[${i}]`)
      checkLength(lengths[i]!, b.length, `lengths[${i}]`)
      if (seen.has(b.buffer)) throw new InvalidArgumentError(`bufs[${i}] shares an ArrayBuffer with another`)
      seen.add(b.buffer)
    })
    this.#checkStart(opts?.signal)
    const moved = bufs.map(take)
    const reply = await this.#run<'hash'>(
      { kind: 'hash', bufs: moved, lengths: [...lengths] },
      moved.map((b) => b.buffer as ArrayBuffer),
      opts?.signal,
    )
    return { hashes: splitHashes(reply.hashes, bufs.length), buffers: reply.bufs }
  }

  /**
   * Cuts files out of a collection's pack into its staging tree with synchronous file calls on a
   * worker (src/workers/cut-files.ts); the thread holds one 1 MiB buffer of its own for it.
   */
  async cutFiles(req: Omit<CutRequest, 'kind'>, opts?: TaskOptions): Promise<void> {
    this.#checkStart(opts?.signal)
    await this.#run<'cut'>({ kind: 'cut', ...req }, [], opts?.signal)
  }

  /** Sender side: SHA-256 (to detect a file changed since indexing; see `hash`) and compression per `policy`. */
  async encode(buf: Uint8Array, policy: CodecPolicy, opts?: EncodeOptions): Promise<EncodeResult> {
    checkOwned(buf, 'buf')
    const length = opts?.length ?? buf.length
    checkLength(length, Math.min(buf.length, MAX_RAW_LENGTH), 'length')
    if (!CODEC_POLICIES.includes(policy)) throw new InvalidArgumentError(`unknown codec policy ${policy}`)
    const level = opts?.zstdLevel
    if (level !== undefined && !(Number.isInteger(level) && level >= 1 && level <= 19)) {
      throw new InvalidArgumentError(`zstdLevel must be an integer from 1 to 19, got ${level}`)
    }
    this.#checkStart(opts?.signal)
    const moved = take(buf)
    const r = await this.#run<'encode'>(
      {
        kind: 'encode',
        buf: moved,
        length,
        policy,
        hash: opts?.hash ?? true,
        zstdLevel: level,
      },
      [moved.buffer as ArrayBuffer],
      opts?.signal,
    )
    const payload = r.payload ?? (length === r.buf.length ? r.buf : r.buf.subarray(0, length))
    return { hash: r.hash, codec: r.codec, payload, buf: r.buf }
  }

  /**
   * Receiver side: decompress to exactly `rawLength` bytes and check SHA-256 == `expectedHash`.
   * Rejects with DecompressionError, ChunkVerificationError or CodecUnsupportedError. The result
   * is exactly `rawLength` long: the payload itself (codec none), a view of `into`, or a new buffer.
   */
  async decodeVerify(
    payload: Uint8Array,
    codec: Codec,
    rawLength: number,
    expectedHash: Uint8Array,
    opts?: DecodeOptions,
  ): Promise<Uint8Array> {
    checkOwned(payload, 'payload')
    if (!CODECS.includes(codec)) throw new CodecUnsupportedError(`unknown codec ${String(codec)}`)
    checkLength(rawLength, MAX_RAW_LENGTH, 'rawLength')
    if (!(expectedHash instanceof Uint8Array) || expectedHash.length !== SHA256_BYTES) {
      throw new InvalidArgumentError(`expectedHash must be ${SHA256_BYTES} bytes`)
    }
    const into = codec === 'none' ? undefined : opts?.into
    if (into !== undefined) {
      checkOwned(into, 'into')
      if (into.length < rawLength)
        throw new InvalidArgumentError(`into holds ${into.length} < ${rawLength} bytes`)
      if (into.buffer === payload.buffer)
        throw new InvalidArgumentError('into and payload share an ArrayBuffer')
    }
    this.#checkStart(opts?.signal)
    const movedPayload = take(payload)
    const movedInto = into === undefined ? null : take(into)
    const transfer = [movedPayload.buffer as ArrayBuffer]
    if (movedInto !== null) transfer.push(movedInto.buffer as ArrayBuffer)
    const r = await this.#run<'decode'>(
      {
        kind: 'decode',
        payload: movedPayload,
        codec,
        rawLength,
        // A copy: a view would clone its whole backing buffer (a leaf table, say) into the message.
        expectedHash: expectedHash.slice(),
        into: movedInto,
      },
      transfer,
      opts?.signal,
    )
    if (r.spare !== null) opts?.onSpare?.(r.spare)
    return r.data.length === rawLength ? r.data : r.data.subarray(0, rawLength)
  }

  /**
   * Content-defined chunk boundaries in `buf.subarray(0, length)` (see src/chunking/fastcdc.ts),
   * with the SHA-256 of each chunk; `buf` is moved and comes back. Unless `isFinal`, the bytes
   * after `consumed` did not make a complete chunk yet.
   */
  async cdcChunkAndHash(
    buf: Uint8Array,
    length: number,
    params: CdcParams,
    isFinal: boolean,
    opts?: TaskOptions,
  ): Promise<CdcResult> {
    const r = await this.#cdc(buf, length, params, isFinal, true, opts)
    return {
      lengths: r.lengths,
      hashes: splitHashes(r.hashes, r.lengths.length),
      consumed: r.consumed,
      buf: r.buf,
    }
  }

  /**
   * Only the content-defined cut points in `buf.subarray(0, length)`, no hashes: for a caller
   * that hashes the chunks in parallel on other threads. `buf` is moved and comes back.
   */
  async cdcCuts(
    buf: Uint8Array,
    length: number,
    params: CdcParams,
    isFinal: boolean,
    opts?: TaskOptions,
  ): Promise<{ lengths: number[]; consumed: number; buf: Uint8Array }> {
    const r = await this.#cdc(buf, length, params, isFinal, false, opts)
    return { lengths: r.lengths, consumed: r.consumed, buf: r.buf }
  }

  #cdc(
    buf: Uint8Array,
    length: number,
    params: CdcParams,
    isFinal: boolean,
    hash: boolean,
    opts?: TaskOptions,
  ) {
    checkOwned(buf, 'buf')
    checkLength(length, buf.length, 'length')
    verifyCdcSizes(params)
    const { minSize, avgSize, maxSize } = params
    this.#checkStart(opts?.signal)
    const moved = take(buf)
    return this.#run<'cdc'>(
      {
        kind: 'cdc',
        buf: moved,
        length,
        params: { minSize, avgSize, maxSize },
        isFinal: Boolean(isFinal),
        hash,
      },
      [moved.buffer as ArrayBuffer],
      opts?.signal,
    )
  }

  /** Stops the threads. Waiting and running calls reject with AbortedError; later calls too. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#slots.rejectWaiters(new AbortedError('worker pool destroyed'))
    await this.#piscina.destroy()
  }

  /** Checked before any buffer is moved, so a refused call leaves the caller's buffers intact. */
  #checkStart(signal: AbortSignal | undefined): void {
    if (this.#destroyed) throw new AbortedError('worker pool destroyed')
    if (signal?.aborted) throw abortedBy(signal)
  }

  async #run<K extends keyof ReplyFor>(
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
