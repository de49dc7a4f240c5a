import {
  ContentChangedError,
  ContentPreparingError,
  type HaulError,
  ProtocolViolationError,
  TooManyRequestsError,
} from '../errors.ts'
import { haveRuns } from '../fetch/have.ts'
import type { FrameStream } from '../net/stream-io.ts'
import { FrameDecoder } from '../protocol/decoder.ts'
import { encodeMessage, errorMessage } from '../protocol/encoder.ts'
import { PROTOCOL_VERSION, type TransferMessage } from '../protocol/messages.ts'
import { FrameWriter } from '../session/frame-writer.ts'
import { CODECS, type Codec } from '../types.ts'
import { assertNever } from '../util/never.ts'
import { policyFor } from '../workers/codecs.ts'
import { notFound } from './access.ts'
import type { PublishedContent } from './registry.ts'
import { ChunkReplies } from './serve-chunks.ts'
import type { SessionEvents } from './serve-events.ts'
import { ServeGuard } from './serve-guard.ts'
import type { PeerShare } from './serve-shares.ts'
import type { ServerContext } from './server-context.ts'

type Request = Extract<TransferMessage, { type: 'get-header' | 'get-pages' | 'get-chunks' | 'get-have' }>

/**
 * Serves one inbound stream. A reader loop decodes frames and queues requests
 * (bounded); one worker answers them in order, reading only the chunks asked
 * for, checking the file unchanged (a file changed after indexing is refused,
 * never served) and compressing it in the worker pool. Every frame goes out
 * through `stream.write`, which waits for drain. What a peer can make the
 * stream hold is bounded: request frames by type (src/protocol/frame.ts) and
 * in time, unfinished frames and read-ahead per peer, and a reply the peer
 * does not take for `stallTimeoutMs` gets the stream reset (serve-guard.ts,
 * serve-shares.ts).
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
  #inputDone = false
  #helloSeen = false
  /** A request's answer broke off with the stream (see #busy). */
  #cutOff = false
  /** The peer's last request frame cancelled one still queued or being answered. */
  #cancelledLast = false
  readonly #events: SessionEvents | undefined
  readonly #abort = new AbortController()
  readonly #writer: FrameWriter
  readonly #share: PeerShare
  readonly #guard: ServeGuard
  /** Made at the peer's hello (see #startChunks). */
  #chunks: ChunkReplies | undefined
  /**
   * Rejects when a bound breaks while the reader waits for input: one of the guard's, or the
   * writer's (replies the peer made us queue past its bound: see #sendSafe).
   */
  readonly #broken: Promise<never>
  readonly #break: (err: unknown) => void

  constructor(stream: FrameStream, ctx: ServerContext) {
    this.#stream = stream
    this.#ctx = ctx
    this.#writer = new FrameWriter(stream, { maxQueued: ctx.limits.maxQueuedRequests + 8 })
    this.#share = ctx.shares.join(stream.remotePeer)
    const broken = Promise.withResolvers<never>()
    this.#broken = broken.promise
    this.#broken.catch(() => {})
    this.#break = broken.reject
    this.#guard = new ServeGuard(stream, this.#share, ctx.limits, broken.reject)
    this.#events = ctx.events?.open(stream.remotePeer, stream.remoteAddr, () => this.#busy())
  }

  /**
   * The chunk loop, made when the peer's hello says which codecs it takes (requests are refused
   * before it): a receiver that takes none of the codec's output gets chunks plain.
   */
  #startChunks(accepted: readonly Codec[]): void {
    const ctx = this.#ctx
    const stream = this.#stream
    const codec = policyFor(ctx.codec, accepted)
    const events = this.#events
    this.#chunks = new ChunkReplies({
      registry: ctx.registry,
      encoder: {
        budget: this.#share,
        pool: ctx.pool,
        codec,
        buffers: ctx.buffers,
        verifySource: ctx.verifySource,
        hold: (bytes, opts) => this.#share.hold(bytes, opts),
        peer: stream.remotePeer.toString(),
      },
      cache: ctx.cache,
      writer: this.#writer,
      signal: this.#abort.signal,
      readAhead: ctx.limits.readAhead,
      maxChunksPerRequest: ctx.limits.maxChunksPerRequest,
      upload: ctx.upload,
      ...(events === undefined
        ? {}
        : { chunkSent: (raw: number, wire: number) => events.chunkSent(raw, wire) }),
      isCancelled: (id) => this.#cancelled.has(id),
      nextQueued: () => this.#queue[0],
      circuitBytesLeft: () => stream.circuitBytesLeft(),
      codecChoice: codec === 'auto' ? ctx.codecChoices?.of(stream.remotePeer) : undefined,
    })
  }

  async run(): Promise<void> {
    const stop = (): void => this.#abort.abort()
    this.#ctx.signal.addEventListener('abort', stop, { once: true })
    const worker = this.#work()
    let failure: unknown
    let busy = false
    try {
      await this.#read()
    } catch (err) {
      failure = err
      // A peer that cancels its requests as it resets the stream (a fetch cancelled) cut one off too.
      busy = this.#busy() || this.#cancelledLast
    } finally {
      this.#inputDone = true
      this.#wake?.()
    }
    try {
      if (failure !== undefined) {
        // A malformed frame, a broken bound or a broken stream: stop work, tell the peer why, then cut it off.
        this.#abort.abort()
        await worker
        await this.#sendSafe(errorMessage(0, failure))
        await closeWithin(this.#stream, CLOSE_GRACE_MS, failure)
      } else {
        // The peer is done asking; the stall rule still bounds how long its last replies may wait.
        await Promise.race([worker, this.#broken]).catch((err: unknown) => {
          busy = this.#busy()
          this.#abort.abort()
          failure = err
        })
        await worker
        await closeWithin(this.#stream, CLOSE_GRACE_MS, failure)
      }
    } finally {
      this.#events?.end(failure, busy)
      this.#guard.close()
      this.#share.leave()
      this.#ctx.signal.removeEventListener('abort', stop)
    }
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder({ maxFrame: this.#ctx.limits.maxFrame, side: 'serving' })
    const input = this.#stream.incoming[Symbol.asyncIterator]()
    for (;;) {
      const next = await Promise.race([input.next(), this.#broken])
      if (next.done === true) break
      decoder.push(next.value)
      let completed = false
      for (const msg of decoder.frames()) {
        completed = true
        this.#onMessage(msg)
      }
      this.#guard.afterRead(decoder.buffered, completed)
      if (this.#abort.signal.aborted) return
    }
    decoder.finish()
  }

  #onMessage(msg: TransferMessage): void {
    if (msg.type === 'hello') {
      if (this.#helloSeen) throw new ProtocolViolationError('hello sent twice')
      this.#helloSeen = true
      this.#writer.maxFrame = msg.maxFrame
      this.#startChunks(msg.codecs)
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
        else return
        this.#cancelledLast = true
        return
      }
      case 'get-header':
      case 'get-pages':
      case 'get-chunks':
      case 'get-have':
        this.#cancelledLast = false
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
      await this.#chunks?.dropPrefetch()
    }
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
      void this.#chunks?.dropPrefetch(req.requestId)
      try {
        await this.#answer(req)
      } catch (err) {
        if (this.#abort.signal.aborted) {
          this.#cutOff = true
          return
        }
        await this.#sendSafe(errorMessage(req.requestId, err))
        if (this.#abort.signal.aborted) this.#cutOff = true
        // A changed file cannot be served to anyone: stop serving it.
        if (err instanceof ContentChangedError) {
          const gone = this.#ctx.registry.withdrawChanged(req.cid, err.message)
          this.#ctx.cache.forget(req.cid)
          if (gone !== undefined) this.#ctx.events?.withdrawn(gone, err)
        }
      } finally {
        this.#current = undefined
        this.#cancelled.clear()
      }
    }
  }

  async #answer(req: Request): Promise<void> {
    // Without its secret, published content gets the very answer unknown content does.
    const { registry } = this.#ctx
    let content = registry.granted(req.cid, req.secret)
    const reading = content === undefined ? registry.lastRunRead() : undefined
    if (reading !== undefined) {
      await reading
      content = registry.granted(req.cid, req.secret)
    }
    if (content === undefined) {
      const preparing = registry.preparingFor(req.cid, req.secret)
      if (preparing !== undefined) throw new ContentPreparingError(preparing)
      const changed = registry.changedFor(req.cid, req.secret)
      throw changed === undefined ? notFound() : new ContentChangedError(changed)
    }
    switch (req.type) {
      case 'get-header':
        this.#events?.request(content, true)
        await this.#send({ type: 'header', requestId: req.requestId, header: content.headerBytes })
        return
      case 'get-pages':
        return this.#answerPages(req, content)
      case 'get-chunks':
        this.#events?.request(content, false)
        // Queued only after hello, which made the chunk loop.
        return this.#chunks!.answer(req, content)
      case 'get-have':
        return this.#answerHave(req, content)
      default:
        assertNever(req)
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

  /**
   * Requests are queued or being answered (one its peer cancelled no longer counts: a receiver
   * that withdrew what it asked and closed stopped fetching), or an answer broke off with the stream.
   */
  #busy(): boolean {
    const answering = this.#current !== undefined && !this.#cancelled.has(this.#current)
    return this.#queue.length > 0 || answering || this.#cutOff
  }

  async #send(msg: TransferMessage | readonly TransferMessage[]): Promise<void> {
    await this.#writer.send(msg, { signal: this.#abort.signal })
  }

  /**
   * Replies from the reader loop (hello, refusals) and error frames. One that cannot be sent
   * means the stream is gone, or that the peer made us queue more replies than the writer holds
   * (a burst of requests far past maxQueuedRequests, each refused): either way the stream is cut
   * off now, through the failure path, rather than left to its idle timer with the reader waiting.
   */
  async #sendSafe(msg: TransferMessage): Promise<void> {
    await this.#writer.send(msg).catch((err: unknown) => {
      this.#abort.abort()
      this.#break(err)
    })
  }
}

/** How long a closing stream may take to flush its last frames before it is reset. */
const CLOSE_GRACE_MS = 2000

/**
 * Closes `stream`, resetting it if the peer has not closed its side within `ms`. With a `reason`
 * (the peer is being cut off) its further bytes are not taken meanwhile: they would only be
 * received to be dropped.
 */
async function closeWithin(stream: FrameStream, ms: number, reason?: unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = await Promise.race([
    stream.close({ stopInput: reason !== undefined }).then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
  ])
  clearTimeout(timer)
  if (timedOut) stream.abort(reason instanceof Error ? reason : new Error('closing stream timed out'))
}
