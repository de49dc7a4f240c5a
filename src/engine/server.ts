import {
  ChunkUnavailableError,
  ContentChangedError,
  ContentNotFoundError,
  type HaulError,
  ProtocolViolationError,
  TooManyRequestsError,
} from '../errors.ts'
import type { FrameStream } from '../net/stream-io.ts'
import { FrameDecoder } from '../protocol/decoder.ts'
import { encodeMessage, errorMessage } from '../protocol/encoder.ts'
import { PROTOCOL_VERSION, type TransferMessage } from '../protocol/messages.ts'
import { CODECS } from '../types.ts'
import type { CodecPolicy } from '../workers/codecs.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { BufferRecycler } from './buffer-recycler.ts'
import {
  chunkIndices,
  type EncodedChunk,
  encodeChunk,
  rangeProblem,
  releaseAll,
  type VerifySourcePolicy,
} from './chunk-encoder.ts'
import { FrameWriter } from './frame-writer.ts'
import type { MemoryBudget } from './memory-budget.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { ContentRegistry, PublishedContent } from './registry.ts'
import { haveRuns } from './swarm/have.ts'

export interface ServerLimits {
  /** Requests a peer may queue on one stream before it gets TOO_MANY_REQUESTS. @default 64 */
  maxQueuedRequests: number
  /** Chunks one request may name. @default 4096 */
  maxChunksPerRequest: number
  /** Pages one request may name. @default 16 */
  maxPagesPerRequest: number
  /** Chunks read and encoded ahead of the one being sent, per stream. @default 4 */
  readAhead: number
  /** Largest frame we accept and announce. */
  maxFrame: number
}

export interface ServerContext {
  registry: ContentRegistry
  pool: WorkerPool
  budget: MemoryBudget
  codec: CodecPolicy
  /** When chunks are hashed against their leaf before sending. @default 'auto' */
  verifySource?: VerifySourcePolicy
  limits: ServerLimits
  signal: AbortSignal
  /** Upload bandwidth: taken (payload bytes) before each chunk frame is sent. @default unlimited */
  uploadLimiter?: RateLimiter
  /** Read buffers come from here and go back once their frame is out. @default a fresh buffer per chunk */
  buffers?: BufferRecycler
}

type Request = Extract<TransferMessage, { type: 'get-header' | 'get-pages' | 'get-chunks' | 'get-have' }>

/**
 * Serves one inbound stream. A reader loop decodes frames and queues requests
 * (bounded); one worker answers them in order, reading only the chunks asked
 * for, checking the file unchanged (a file changed after indexing is refused,
 * never served) and compressing it in the worker pool. Every frame goes out
 * through `stream.write`, which waits for drain.
 */
export async function serveStream(stream: FrameStream, ctx: ServerContext): Promise<void> {
  const session = new ServerSession(stream, ctx)
  await session.run()
}

/**
 * Turns away a stream the network will not serve (the peer has too many open here): a
 * connection-level `error` frame the peer's session reads as TOO_MANY_REQUESTS, which its transfer
 * retries after a backoff, then the stream is closed.
 */
export async function refuseStream(stream: FrameStream, reason: HaulError): Promise<void> {
  await stream.write(encodeMessage(errorMessage(0, reason)))
  await closeWithin(stream, CLOSE_GRACE_MS, reason)
}

class ServerSession {
  readonly #stream: FrameStream
  readonly #ctx: ServerContext
  readonly #queue: Request[] = []
  readonly #cancelled = new Set<number>()
  #wake: (() => void) | undefined
  #current: number | undefined
  /** The next queued get-chunks' first chunks, encoding while this request's last ones go out. */
  #prefetched: Prefetched | undefined
  #inputDone = false
  #helloSeen = false
  readonly #abort = new AbortController()
  readonly #writer: FrameWriter

  constructor(stream: FrameStream, ctx: ServerContext) {
    this.#stream = stream
    this.#ctx = ctx
    this.#writer = new FrameWriter(stream, { maxQueued: ctx.limits.maxQueuedRequests + 8 })
  }

  async run(): Promise<void> {
    const stop = (): void => this.#abort.abort()
    this.#ctx.signal.addEventListener('abort', stop, { once: true })
    const worker = this.#work()
    let failure: unknown
    try {
      await this.#read()
    } catch (err) {
      failure = err
    } finally {
      this.#inputDone = true
      this.#wake?.()
    }
    if (failure !== undefined) {
      // A malformed frame or a broken stream: stop work, tell the peer why, then cut it off.
      this.#abort.abort()
      await worker
      await this.#sendSafe(errorMessage(0, failure))
      await closeWithin(this.#stream, CLOSE_GRACE_MS, failure)
    } else {
      await worker
      await closeWithin(this.#stream, CLOSE_GRACE_MS)
    }
    this.#ctx.signal.removeEventListener('abort', stop)
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder({ maxFrame: this.#ctx.limits.maxFrame })
    for await (const data of this.#stream.incoming) {
      decoder.push(data)
      for (const msg of decoder.frames()) this.#onMessage(msg)
      if (this.#abort.signal.aborted) return
    }
    decoder.finish()
  }

  #onMessage(msg: TransferMessage): void {
    if (msg.type === 'hello') {
      if (this.#helloSeen) throw new ProtocolViolationError('hello sent twice')
      this.#helloSeen = true
      this.#writer.maxFrame = msg.maxFrame
      void this.#sendSafe({
        type: 'hello',
        version: PROTOCOL_VERSION,
        codecs: [...CODECS],
        maxFrame: this.#ctx.limits.maxFrame,
      })
      return
    }
    if (!this.#helloSeen) throw new ProtocolViolationError(`expected hello first, got ${msg.type}`)
    switch (msg.type) {
      case 'cancel': {
        // Only requests still queued or being answered are remembered, so the set stays bounded.
        const queued = this.#queue.findIndex((r) => r.requestId === msg.requestId)
        if (queued >= 0) this.#queue.splice(queued, 1)
        else if (this.#current === msg.requestId) this.#cancelled.add(msg.requestId)
        return
      }
      case 'get-header':
      case 'get-pages':
      case 'get-chunks':
      case 'get-have':
        if (this.#queue.length >= this.#ctx.limits.maxQueuedRequests) {
          void this.#sendSafe(
            errorMessage(
              msg.requestId,
              new TooManyRequestsError('too many queued requests on one stream: wait for replies'),
            ),
          )
          return
        }
        this.#queue.push(msg)
        this.#wake?.()
        return
      default:
        throw new ProtocolViolationError(`a receiver does not send ${msg.type}`)
    }
  }

  async #work(): Promise<void> {
    try {
      await this.#answerQueue()
    } finally {
      await this.#dropPrefetch()
    }
  }

  /** Gives back read-ahead started for a request other than `keep` (cancelled while queued, or the session ends). */
  #dropPrefetch(keep?: number): Promise<void> {
    const pre = this.#prefetched
    if (pre === undefined || pre.requestId === keep) return Promise.resolve()
    this.#prefetched = undefined
    return releaseAll(pre.encoded)
  }

  async #answerQueue(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      const req = this.#queue.shift()
      if (req === undefined) {
        if (this.#inputDone) return
        await new Promise<void>((r) => (this.#wake = r))
        this.#wake = undefined
        continue
      }
      this.#current = req.requestId
      void this.#dropPrefetch(req.requestId)
      try {
        await this.#answer(req)
      } catch (err) {
        if (this.#abort.signal.aborted) return
        await this.#sendSafe(errorMessage(req.requestId, err))
        // A changed file cannot be served to anyone: stop serving it.
        if (err instanceof ContentChangedError) this.#ctx.registry.unpublish(req.cid)
      } finally {
        this.#current = undefined
        this.#cancelled.clear()
      }
    }
  }

  async #answer(req: Request): Promise<void> {
    const content = this.#ctx.registry.get(req.cid)
    if (content === undefined) {
      throw new ContentNotFoundError(
        'this peer does not publish that content id: check the ticket, or ask the sender to publish again',
      )
    }
    switch (req.type) {
      case 'get-header':
        await this.#send({ type: 'header', requestId: req.requestId, header: content.headerBytes })
        return
      case 'get-pages':
        return this.#answerPages(req, content)
      case 'get-chunks':
        return this.#answerChunks(req, content)
      case 'get-have':
        return this.#answerHave(req, content)
    }
  }

  /** A full copy says so in one frame; a partial seeder sends its bitmap of the range asked for. */
  async #answerHave(req: Extract<Request, { type: 'get-have' }>, content: PublishedContent): Promise<void> {
    const { requestId } = req
    if (content.holds === undefined) {
      const bits = new Uint8Array(0)
      await this.#send({ type: 'have', requestId, complete: true, start: 0, count: 0, bits })
    } else {
      for (const run of haveRuns(content.holds, content.header.leafCount, req.start, req.count)) {
        if (this.#cancelled.has(requestId)) return
        await this.#send({ type: 'have', requestId, complete: false, ...run })
      }
    }
    await this.#send({ type: 'end', requestId })
  }

  async #answerPages(req: Extract<Request, { type: 'get-pages' }>, content: PublishedContent): Promise<void> {
    const pageCount = content.reader.pageCount
    if (
      req.count < 1 ||
      req.count > this.#ctx.limits.maxPagesPerRequest ||
      req.firstPage + req.count > pageCount
    ) {
      throw new ProtocolViolationError(`pages [${req.firstPage}, +${req.count}) are outside 0..${pageCount}`)
    }
    const last = req.firstPage + req.count - 1
    for (let p = req.firstPage; p <= last; p++) {
      if (this.#cancelled.has(req.requestId)) return
      const { entries, proof } = await content.reader.readPage(p)
      const page: TransferMessage = { type: 'page', requestId: req.requestId, pageIndex: p, entries, proof }
      await this.#send(p === last ? [page, { type: 'end', requestId: req.requestId }] : page)
    }
  }

  async #answerChunks(
    req: Extract<Request, { type: 'get-chunks' }>,
    content: PublishedContent,
  ): Promise<void> {
    const problem = rangeProblem(req.ranges, content.header.leafCount, this.#ctx.limits.maxChunksPerRequest)
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
    // Read and encode up to `readAhead` chunks ahead; send strictly in request order. The first
    // ones may already be encoding (prefetched while the previous request finished; #answerQueue
    // dropped any for another request).
    const pre = this.#prefetched
    this.#prefetched = undefined
    const indices = pre?.indices ?? chunkIndices(req.ranges)
    const ahead: Promise<EncodedChunk>[] = pre?.encoded ?? []
    const signal = this.#abort.signal
    try {
      // One index ahead, so the request's last chunk is known when it is sent: it takes the end along.
      let next = indices.next()
      const sendOldest = async (): Promise<void> => {
        const chunk = await ahead.shift()!
        await this.#sendChunk(req.requestId, chunk, next.done === true && ahead.length === 0)
      }
      while (next.done !== true) {
        if (this.#cancelled.has(req.requestId) || signal.aborted) break
        ahead.push(this.#startEncode(content, next.value, signal))
        next = indices.next()
        if (ahead.length >= this.#ctx.limits.readAhead) await sendOldest()
      }
      while (ahead.length > 0 && !this.#cancelled.has(req.requestId)) {
        // Measured: without this the sender's loop spent ~20 % of a transfer waiting for the
        // first chunk of each request (1.2 s of 6 s for 1 GiB at 8 chunks a request).
        this.#prefetchNext(ahead.length, signal)
        await sendOldest()
      }
    } finally {
      await releaseAll(ahead)
    }
  }

  #startEncode(content: PublishedContent, index: number, signal: AbortSignal): Promise<EncodedChunk> {
    const encoded = encodeChunk(this.#ctx, content, index, signal)
    // Read-ahead fails while the loop waits on a send when the session aborts; it is still
    // seen by releaseAll, but must not surface as an unhandled rejection.
    encoded.catch(() => {})
    return encoded
  }

  /**
   * Starts the next queued get-chunks' first chunks so that, with the `busy` ones of the
   * current request, at most `readAhead` are in flight. Only requests that will pass
   * #answerChunks' checks, for full copies; the rest wait their turn as before.
   */
  #prefetchNext(busy: number, signal: AbortSignal): void {
    const next = this.#queue[0]
    if (next?.type !== 'get-chunks') return
    let pre = this.#prefetched
    if (pre?.requestId !== next.requestId) {
      const content = this.#ctx.registry.get(next.cid)
      if (content === undefined || content.holds !== undefined) return
      const max = this.#ctx.limits.maxChunksPerRequest
      if (rangeProblem(next.ranges, content.header.leafCount, max) !== undefined) return
      void this.#dropPrefetch(next.requestId)
      pre = { requestId: next.requestId, content, indices: chunkIndices(next.ranges), encoded: [] }
      this.#prefetched = pre
    }
    while (busy + pre.encoded.length < this.#ctx.limits.readAhead) {
      const r = pre.indices.next()
      if (r.done === true) return
      pre.encoded.push(this.#startEncode(pre.content, r.value, signal))
    }
  }

  /** `last`: the request's last chunk, sent with the request's `end` in one write. */
  async #sendChunk(requestId: number, c: EncodedChunk, last = false): Promise<void> {
    try {
      await this.#ctx.uploadLimiter?.take(c.payload.length, { signal: this.#abort.signal })
      const buffers = c.recycle ? this.#ctx.buffers : undefined
      const payload = c.payload
      const chunk: TransferMessage = {
        type: 'chunk',
        requestId,
        index: c.index,
        codec: c.codec,
        rawLength: c.rawLength,
        payload,
      }
      await this.#writer.send(last ? [chunk, { type: 'end', requestId }] : chunk, {
        signal: this.#abort.signal,
        // Back to the recycler once libp2p has encrypted it, not before (stream-io.ts).
        ...(buffers === undefined ? {} : { onReleased: () => buffers.give(payload) }),
      })
    } finally {
      c.release()
    }
  }

  async #send(msg: TransferMessage | readonly TransferMessage[]): Promise<void> {
    await this.#writer.send(msg, { signal: this.#abort.signal })
  }

  /** Replies from the reader loop (hello, refusals): a failure here means the stream is gone anyway. */
  async #sendSafe(msg: TransferMessage): Promise<void> {
    await this.#writer.send(msg).catch(() => this.#abort.abort())
  }
}

interface Prefetched {
  readonly requestId: number
  readonly content: PublishedContent
  /** The request's chunk indices not yet started. */
  readonly indices: Generator<number>
  readonly encoded: Promise<EncodedChunk>[]
}

/** How long a closing stream may take to flush its last frames before it is reset. */
const CLOSE_GRACE_MS = 2000

async function closeWithin(stream: FrameStream, ms: number, reason?: unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = await Promise.race([
    stream.close().then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
  ])
  clearTimeout(timer)
  if (timedOut) stream.abort(reason instanceof Error ? reason : new Error('closing stream timed out'))
}
