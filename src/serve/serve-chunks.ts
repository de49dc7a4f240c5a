import { ChunkUnavailableError, CircuitLimitError } from '../errors.ts'
import type { TransferMessage } from '../protocol/messages.ts'
import { freeBuffer } from '../resources/buffer-recycler.ts'
import type { FrameWriter } from '../session/frame-writer.ts'
import { awaitedLater } from '../util/abort.ts'
import type { ChunkCache } from './chunk-cache.ts'
import {
  type ChunkEncoderContext,
  chunkIndices,
  type EncodedChunk,
  rangeProblem,
  releaseAll,
} from './chunk-encoder.ts'
import { CODEC_LADDER, type CodecChooser } from './codec-choice.ts'
import { type ContentRegistry, contentKey, type PublishedContent } from './registry.ts'
import type { UploadSpread } from './upload-spread.ts'

export type GetChunks = Extract<TransferMessage, { type: 'get-chunks' }>

/** What the chunk loop needs of the serving session it works for. */
export interface ChunkSessionContext {
  readonly registry: ContentRegistry
  /** The encoder's budget is the peer's share of the engine budget (serve-shares.ts). */
  readonly encoder: ChunkEncoderContext
  /** Where chunks are read and encoded once for every session serving the same content. */
  readonly cache: ChunkCache
  readonly writer: FrameWriter
  readonly signal: AbortSignal
  readonly readAhead: number
  readonly maxChunksPerRequest: number
  /** The engine's upload limit, taken (payload bytes) before each chunk goes, least-sent chunks first. */
  readonly upload?: UploadSpread | undefined
  /** A chunk went out: `rawLength` bytes of content as `wireLength` payload bytes. */
  chunkSent?(rawLength: number, wireLength: number): void
  isCancelled(requestId: number): boolean
  /** The request queued next on the stream, if any (its first chunks may be read ahead). */
  nextQueued(): TransferMessage | undefined
  /** Bytes the relay still lets the stream's connection carry; undefined without a data limit. */
  circuitBytesLeft?(): number | undefined
  /** The peer's codec choice, when the engine's codec is `auto` (codec-choice.ts). */
  readonly codecChoice?: CodecChooser | undefined
}

/**
 * Room kept on a data-limited circuit beyond a chunk's payload: its frame header, Noise and
 * yamux framing (under 0.1 %), the window updates and requests coming the other way, and what
 * the other streams on the circuit send meanwhile.
 */
export const CIRCUIT_MARGIN_BYTES = 64 * 1024

/** A chunk, and the codec ladder step it was encoded under (when the codec is chosen by measurement). */
type StepChunk = EncodedChunk & { step?: number | undefined }

interface Prefetched {
  readonly requestId: number
  readonly content: PublishedContent
  /** The request's chunk indices not yet started. */
  readonly indices: Generator<number>
  readonly encoded: Promise<StepChunk>[]
}

/**
 * Answers get-chunks on one stream: reads and encodes up to `readAhead` chunks ahead of the one
 * being sent, sends strictly in request order, and starts the next queued request's first chunks
 * while this one's last go out. Every chunk holds its budget lease until the stream has let go of
 * its bytes (not merely accepted the write), so what a peer that stops reading pins is counted
 * against its share of the budget.
 */
export class ChunkReplies {
  readonly #s: ChunkSessionContext
  /** The next queued get-chunks' first chunks, encoding while this request's last ones go out. */
  #prefetched: Prefetched | undefined
  readonly #encoders: ChunkEncoderContext[] = []

  constructor(session: ChunkSessionContext) {
    this.#s = session
  }

  /** Gives back read-ahead started for a request other than `keep` (cancelled while queued, or the session ends). */
  dropPrefetch(keep?: number): Promise<void> {
    const pre = this.#prefetched
    if (pre === undefined || pre.requestId === keep) return Promise.resolve()
    this.#prefetched = undefined
    return releaseAll(pre.encoded)
  }

  async answer(req: GetChunks, content: PublishedContent): Promise<void> {
    const s = this.#s
    const problem = rangeProblem(req.ranges, content.header.leafCount, s.maxChunksPerRequest)
    if (problem !== undefined) throw problem
    if (content.holds !== undefined) {
      // A partial seeder refuses the whole request up front: a typed error, never a partial answer.
      for (const r of req.ranges) {
        for (let i = r.start; i < r.end; i++) {
          if (!content.holds(i)) throw new ChunkUnavailableError(`this peer does not hold chunk ${i} yet`)
        }
      }
    }
    await content.source.checkUnchanged()
    // The first chunks may already be encoding (prefetched while the previous request finished;
    // the session dropped any prefetched for another request).
    const pre = this.#prefetched
    this.#prefetched = undefined
    const indices = pre?.indices ?? chunkIndices(req.ranges)
    const ahead: Promise<StepChunk>[] = pre?.encoded ?? []
    const signal = s.signal
    const cid = s.upload === undefined ? '' : contentKey(content.cid)
    try {
      // One index ahead, so the request's last chunk is known when it is sent: it takes the end along.
      let next = indices.next()
      const sendOldest = async (): Promise<void> => {
        const chunk = await ahead.shift()!
        await this.#send(req.requestId, cid, chunk, next.done === true && ahead.length === 0)
      }
      while (next.done !== true) {
        if (s.isCancelled(req.requestId) || signal.aborted) break
        ahead.push(this.#startEncode(content, next.value))
        next = indices.next()
        if (ahead.length >= s.readAhead) await sendOldest()
      }
      while (ahead.length > 0 && !s.isCancelled(req.requestId)) {
        // Measured: without this the sender's loop spent ~20 % of a transfer waiting for the
        // first chunk of each request (1.2 s of 6 s for 1 GiB at 8 chunks a request).
        this.#prefetchNext(ahead.length)
        await sendOldest()
      }
    } finally {
      await releaseAll(ahead)
    }
  }

  #startEncode(content: PublishedContent, index: number): Promise<StepChunk> {
    const step = this.#s.codecChoice?.current()
    const ctx = step === undefined ? this.#s.encoder : this.#encoderFor(step)
    const got = this.#s.cache.get(ctx, content, index, this.#s.signal)
    // Every chunk the cache hands out is an object of its own: the step is noted on it, not copied.
    const encoded: Promise<StepChunk> =
      step === undefined
        ? got
        : got.then((c: StepChunk) => {
            c.step = step
            return c
          })
    // Read-ahead fails while the loop waits on a send when the session aborts; releaseAll sees it.
    return awaitedLater(encoded)
  }

  /** The encoder context for codec ladder step `step` (made once per step). */
  #encoderFor(step: number): ChunkEncoderContext {
    let ctx = this.#encoders[step]
    if (ctx === undefined) {
      const { policy, level } = CODEC_LADDER[step]!
      ctx = { ...this.#s.encoder, codec: policy, zstdLevel: level === 0 ? undefined : level }
      this.#encoders[step] = ctx
    }
    return ctx
  }

  /**
   * Starts the next queued get-chunks' first chunks so that, with the `busy` ones of the
   * current request, at most `readAhead` are in flight. Only requests that will pass `answer`'s
   * checks, for full copies; the rest wait their turn as before.
   */
  #prefetchNext(busy: number): void {
    const s = this.#s
    const next = s.nextQueued()
    if (next?.type !== 'get-chunks') return
    let pre = this.#prefetched
    if (pre?.requestId !== next.requestId) {
      const content = s.registry.granted(next.cid, next.secret)
      if (content === undefined || content.holds !== undefined) return
      if (rangeProblem(next.ranges, content.header.leafCount, s.maxChunksPerRequest) !== undefined) return
      void this.dropPrefetch(next.requestId)
      pre = { requestId: next.requestId, content, indices: chunkIndices(next.ranges), encoded: [] }
      this.#prefetched = pre
    }
    while (busy + pre.encoded.length < s.readAhead) {
      const r = pre.indices.next()
      if (r.done === true) return
      pre.encoded.push(this.#startEncode(pre.content, r.value))
    }
  }

  /**
   * A relay counts what enters it and resets the circuit past its limit, dropping what it holds:
   * a chunk started without room would be lost midway, with the bytes before it. So it is not
   * started, and the receiver goes on over a new circuit (CIRCUIT_LIMIT is retried).
   */
  #checkCircuit(c: EncodedChunk): void {
    const left = this.#s.circuitBytesLeft?.()
    if (left === undefined) return
    const needs = c.payload.length + CIRCUIT_MARGIN_BYTES + this.#s.writer.bufferedBytes
    if (left >= needs) return
    throw new CircuitLimitError(
      `the relay between us lets this circuit carry ${left} more bytes, and chunk ${c.index} needs ${needs}: the transfer goes on over a new circuit. A relay whose circuits carry less than one chunk cannot carry the file: connect directly, or use a relay without a data limit (haul relay sets none)`,
    )
  }

  /**
   * `cid`: the content's key, naming the chunk in the upload limit's order (with its index).
   * `last`: the request's last chunk, sent with the request's `end` in one write.
   */
  async #send(requestId: number, cid: string, c: StepChunk, last: boolean): Promise<void> {
    const s = this.#s
    const chunk = s.upload === undefined ? '' : `${cid}:${c.index}`
    let handedOver = false
    try {
      await s.upload?.take(chunk, c.payload.length, s.signal)
      if (s.isCancelled(requestId)) {
        // Cancelled while it waited its turn, which on a slow uplink shared by many receivers
        // lasts seconds: the receiver got the chunk elsewhere. Not sent; its turn goes to others.
        s.upload?.refund(chunk, c.payload.length)
        return
      }
      this.#checkCircuit(c)
      const { afterSend } = c
      const payload = c.payload
      const frame: TransferMessage = {
        type: 'chunk',
        requestId,
        index: c.index,
        codec: c.codec,
        rawLength: c.rawLength,
        payload,
      }
      await s.writer.send(last ? [frame, { type: 'end', requestId }] : frame, {
        signal: s.signal,
        // Once libp2p has encrypted the bytes (stream-io.ts): the lease, and the payload's memory
        // (EncodedChunk.afterSend). Until then a peer that reads nothing holds them, inside its share.
        onReleased: () => {
          c.release()
          if (afterSend === 'recycle') s.encoder.buffers?.give(payload)
          else if (afterSend === 'free') freeBuffer(s.encoder.buffers, payload)
        },
      })
      handedOver = true
      if (c.step !== undefined) s.codecChoice?.sent(c.step, c.rawLength)
      s.cache.chunkServed()
      s.chunkSent?.(c.rawLength, payload.length)
    } finally {
      // A write that failed may still be referenced by libp2p: the buffer is dropped, not reused
      // (a cached payload is never reused anyway: chunk-cache.ts).
      if (!handedOver) c.release()
    }
  }
}
