/**
 * WorkerPool: CPU work (SHA-256, compression, content-defined chunking) on Piscina worker threads.
 *
 * Ownership: every buffer handed to a method is moved, synchronously, during the call (the
 * caller's view is detached at once, `byteLength === 0`) and comes back in the result, so it can
 * be recycled. A buffer must own its whole ArrayBuffer; moving a view of a shared slab would
 * detach unrelated data, so that is an InvalidArgumentError. On rejection the buffers are gone.
 *
 * Threads, backpressure and cancellation: ./pool-threads.ts.
 */
import { verifyCdcSizes } from '../chunking/params.ts'
import { CodecUnsupportedError, InvalidArgumentError } from '../errors.ts'
import { CODECS, type Codec } from '../types.ts'
import { CODEC_POLICIES, type CodecPolicy, MAX_RAW_LENGTH } from './codecs.ts'
import { type CdcParams, type CutRequest, SHA256_BYTES } from './messages.ts'
import { checkLength, checkOwned, splitHashes, take } from './pool-handoff.ts'
import {
  type DecodeOptions,
  type EncodeOptions,
  type LengthOptions,
  type TaskOptions,
  verifyWorkerPoolOptions,
  type WorkerPoolOptions,
} from './pool-options.ts'
import { PoolThreads } from './pool-threads.ts'

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
  readonly #threads: PoolThreads

  constructor(opts?: WorkerPoolOptions) {
    const { threads, maxQueue } = verifyWorkerPoolOptions(opts)
    this.#threads = new PoolThreads(threads, maxQueue)
  }

  get threads(): number {
    return this.#threads.threads
  }

  /** Threads started now: one from the start, up to `threads` while tasks wait (see pool-threads.ts). */
  get running(): number {
    return this.#threads.running
  }

  /** Tasks accepted but not running: waiting for a slot, or queued inside Piscina. */
  get queueSize(): number {
    return this.#threads.queueSize
  }

  /** Tasks handed to Piscina and not yet finished (including ones whose caller aborted). */
  get inFlight(): number {
    return this.#threads.inFlight
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
    this.#threads.checkStart(opts?.signal)
    const moved = bufs.map(take)
    const reply = await this.#threads.run<'hash'>(
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
    this.#threads.checkStart(opts?.signal)
    await this.#threads.run<'cut'>({ kind: 'cut', ...req }, [], opts?.signal)
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
    this.#threads.checkStart(opts?.signal)
    const moved = take(buf)
    const r = await this.#threads.run<'encode'>(
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
    this.#threads.checkStart(opts?.signal)
    const movedPayload = take(payload)
    const movedInto = into === undefined ? null : take(into)
    const transfer = [movedPayload.buffer as ArrayBuffer]
    if (movedInto !== null) transfer.push(movedInto.buffer as ArrayBuffer)
    const r = await this.#threads.run<'decode'>(
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
    this.#threads.checkStart(opts?.signal)
    const moved = take(buf)
    return this.#threads.run<'cdc'>(
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
  destroy(): Promise<void> {
    return this.#threads.destroy()
  }
}
