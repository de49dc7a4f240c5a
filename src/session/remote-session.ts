import type { Uint8ArrayList } from 'uint8arraylist'
import { engineDefaults } from '../engine/config/resolve.ts'
import {
  AbortedError,
  asStreamFailure,
  errorFromWire,
  type HaulError,
  ProtocolViolationError,
  StreamClosedError,
  TimeoutError,
} from '../errors.ts'
import type { FrameStream } from '../net/stream-io.ts'
import { FrameDecoder, type PayloadAllocator } from '../protocol/decoder.ts'
import { MIN_MAX_FRAME } from '../protocol/frame.ts'
import { PROTOCOL_VERSION, type TransferMessage } from '../protocol/messages.ts'
import { CODECS, type Codec } from '../types.ts'
import { FrameWriter } from './frame-writer.ts'

type ReplyOf<T extends TransferMessage['type']> = Extract<TransferMessage, { type: T }>
export type ChunkMessage = ReplyOf<'chunk'>
export type PageMessage = ReplyOf<'page'>

interface Pending {
  onFrame: (msg: TransferMessage) => void
  resolve: () => void
  reject: (err: HaulError) => void
}

export interface RemoteSessionOptions {
  /** Largest frame we accept; announced in hello. */
  maxFrame: number
  /**
   * A request whose replies make no progress for this long fails with TimeoutError. Progress is a
   * reply frame not yet received for that request (a page, chunk or have-run it had not sent, the
   * header) or its end; a repeated frame is dropped and does not restart the timer.
   */
  requestTimeoutMs: number
  /**
   * `close()` waits this long for the peer to end its side of the stream, then resets it: a peer
   * that keeps sending (each byte restarts the stream's idle timer) or never reads cannot hold a
   * close open. @default the engine's `timeouts.closeMs` default
   */
  closeTimeoutMs?: number
  /** Where chunk payloads are gathered (recycled buffers); default: a fresh buffer each. */
  allocPayload?: PayloadAllocator
  /** Takes back the payload of a chunk frame that is dropped as a repeat (the allocator's buffer). */
  releasePayload?: (payload: Uint8Array) => void
  /**
   * Codecs chunks may come in, announced in hello (`none` among them); a chunk in another is a
   * protocol violation. @default every codec haul knows
   */
  codecs?: readonly Codec[]
  /** Called once, when the peer's hello arrives: it is there and speaks haul. */
  onHello?: () => void
}

/** RemoteSessionOptions.closeTimeoutMs's default. */
export const DEFAULT_CLOSE_TIMEOUT_MS = engineDefaults.timeouts.closeMs

/**
 * Bytes arriving on the session, per request timeout period, that keep a request waiting: a
 * peer sending less (under ~17 kbit/s with the default 30 s) is not serving.
 */
const FRAME_PROGRESS_BYTES = 64 * 1024

/**
 * Whether each reply frame of one request moves it forward. A header, page or chunk is progress
 * the first time its index arrives (how many can, is bounded by what the request named: its
 * handler refuses the rest); have-runs arrive in order, so one is progress when it starts at or
 * beyond the end of the last; `complete` counts once; any other frame (end, or a reply of the
 * wrong type, which the handler refuses) passes.
 */
function progressRule(): (msg: TransferMessage) => boolean {
  const seen = new Set<number>()
  let haveEnd = 0
  let complete = false
  return (msg) => {
    switch (msg.type) {
      case 'have':
        if (msg.complete) {
          const first = !complete
          complete = true
          return first
        }
        if (msg.count === 0 || msg.start < haveEnd) return false
        haveEnd = msg.start + msg.count
        return true
      case 'header':
      case 'page':
      case 'chunk': {
        const key = msg.type === 'page' ? msg.pageIndex : msg.type === 'chunk' ? msg.index : 0
        if (seen.has(key)) return false
        seen.add(key)
        return true
      }
      default:
        return true
    }
  }
}

/**
 * The receiving side of one stream to one peer: sends requests with fresh ids
 * and routes every reply frame to the request it answers. Replies arrive on a
 * single reader loop; handlers run synchronously so the reader never waits on
 * disk or workers (the caller bounds work by how much it asks for).
 */
export class RemoteSession {
  readonly stream: FrameStream
  #remoteMaxFrame: number | undefined
  #pending = new Map<number, Pending>()
  #nextId = 1
  #closed: HaulError | undefined
  #opts: RemoteSessionOptions
  readonly #codecs: readonly Codec[]
  #decoder: FrameDecoder
  #writer: FrameWriter
  /** Bytes read from the stream: a frame still arriving counts as an answer (see request). */
  #bytesIn = 0
  /** get-chunks requests waiting for their replies. */
  #chunkRequests = 0
  /** Payload bytes of chunk frames new for their request, plus a frame cut short (see chunkBytes). */
  #chunkBytes = 0
  #repeatedFrames = 0

  private constructor(stream: FrameStream, decoder: FrameDecoder, opts: RemoteSessionOptions) {
    this.stream = stream
    this.#decoder = decoder
    this.#opts = opts
    this.#codecs = opts.codecs ?? CODECS
    // Until the peer's hello says otherwise, frames stay within the limit every peer accepts.
    this.#writer = new FrameWriter(stream, { maxFrame: MIN_MAX_FRAME, maxQueued: 1024 })
  }

  /**
   * Sends hello on an opened stream and starts the reader loop. Requests may go out at once,
   * behind our hello: each is far below the smallest frame limit a peer may announce, and the
   * peer answers them only after its own hello, which the reader checks first (a peer speaking
   * another version fails every request with UnsupportedVersionError). That saves a transfer the
   * round trip of waiting for the peer's hello.
   */
  static start(stream: FrameStream, opts: RemoteSessionOptions): RemoteSession {
    const decoder = new FrameDecoder({
      maxFrame: opts.maxFrame,
      ...(opts.allocPayload === undefined ? {} : { allocPayload: opts.allocPayload }),
    })
    const session = new RemoteSession(stream, decoder, opts)
    session
      .#send({
        type: 'hello',
        version: PROTOCOL_VERSION,
        codecs: [...session.#codecs],
        maxFrame: opts.maxFrame,
      })
      .catch((err) => session.#shutdown(asStreamFailure(err)))
    void session.#readLoop(stream.incoming[Symbol.asyncIterator]())
    return session
  }

  /** The peer's frame limit from its hello; undefined until that hello has arrived. */
  get remoteMaxFrame(): number | undefined {
    return this.#remoteMaxFrame
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  get pendingRequests(): number {
    return this.#pending.size
  }

  /**
   * Chunk data the peer delivered: the payloads of chunk frames new for their request, and the
   * bytes of a frame the stream ended inside while a get-chunks request waited. A transfer whose
   * connection is cut before a chunk completes has still seen its peer serve (see
   * FetchJob.progressMark). Repeated chunk frames are not counted: a peer sending the same chunk
   * forever does not look like progress.
   */
  get chunkBytes(): number {
    return this.#chunkBytes
  }

  /**
   * Bytes of a reply frame on its way while a get-chunks request waits: a chunk not yet whole,
   * which a slow link brings over many seconds (a 1 MiB chunk at 1 Mbit/s takes 8 s).
   */
  get arrivingBytes(): number {
    return this.#chunkRequests > 0 ? this.#decoder.buffered : 0
  }

  /** Reply frames dropped because they repeated one their request had already received. */
  get repeatedFrames(): number {
    return this.#repeatedFrames
  }

  /**
   * Sends one request and resolves when its final frame (`end`, or the single reply) arrives.
   * `onFrame` sees each reply once: a frame repeating one this request already received (same
   * page, chunk, have-run or header) is dropped, and it does not restart the request's timer, so
   * a peer that only repeats itself fails the request with TimeoutError like a silent one.
   */
  request(
    build: (requestId: number) => TransferMessage,
    onFrame: (msg: TransferMessage) => 'done' | 'more',
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    const requestId = this.#nextId++
    const msg = build(requestId)
    const chunks = msg.type === 'get-chunks'
    if (chunks) this.#chunkRequests++
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const isProgress = progressRule()
    let repeats = 0
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      clearTimeout(timer)
      const bytesAtArm = this.#bytesIn
      const repeatsAtArm = this.#repeatedFrames
      timer = setTimeout(() => {
        // Replies arriving on a slow link are the peer answering, this request's or those asked
        // before it on the stream, which it answers first (a 1 MiB chunk at 256 kbit/s takes
        // 33 s, and a request waits behind several): the wait goes on while the session brings
        // FRAME_PROGRESS_BYTES a period, whether or not a frame is half-way as the timer fires,
        // and repeats nothing. A peer dripping bytes, or repeating frames, still times out.
        const arriving = this.#bytesIn - bytesAtArm >= FRAME_PROGRESS_BYTES
        if (arriving && this.#repeatedFrames === repeatsAtArm) return arm()
        const why = repeats === 0 ? 'no reply' : `no progress (${repeats} repeated frames)`
        fail(new TimeoutError(`${why} from the peer for ${this.#opts.requestTimeoutMs} ms`))
        void this.#send({ type: 'cancel', requestId }).catch(() => {})
      }, this.#opts.requestTimeoutMs)
    }
    const onAbort = (): void => {
      fail(new AbortedError())
      void this.#send({ type: 'cancel', requestId }).catch(() => {})
    }
    let open = true
    const cleanup = (): void => {
      if (chunks && open) this.#chunkRequests--
      open = false
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      this.#pending.delete(requestId)
    }
    const fail = (err: HaulError): void => {
      cleanup()
      reject(err)
    }
    this.#pending.set(requestId, {
      onFrame: (msg) => {
        if (msg.type === 'error') return fail(errorFromWire(msg.code, msg.message))
        if (!isProgress(msg)) {
          repeats++
          this.#repeatedFrames++
          if (msg.type === 'chunk') this.#opts.releasePayload?.(msg.payload)
          return
        }
        arm()
        if (chunks && msg.type === 'chunk') this.#chunkBytes += msg.payload.length
        try {
          if (onFrame(msg) === 'done') {
            cleanup()
            resolve()
          }
        } catch (err) {
          fail(err as HaulError)
        }
      },
      resolve,
      reject: fail,
    })
    if (opts.signal?.aborted) {
      fail(new AbortedError())
      return promise
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    arm()
    this.#send(msg).catch((err) => fail(err as HaulError))
    return promise
  }

  /**
   * Ends the session: pending requests are cancelled at the peer and fail here with
   * StreamClosedError, our side of the stream closes,
   * and this resolves once the peer has closed its side, or after `closeTimeoutMs`, when the
   * stream is reset instead (a peer that keeps sending or never reads would otherwise hold it
   * open: every byte it sends restarts the stream's idle timer).
   */
  async close(): Promise<void> {
    // Requests still being answered (a multi-peer fetch that finished from others) are withdrawn
    // first: the peer stops answering them and sees a receiver that stopped, not one cut off.
    if (this.#closed === undefined) {
      for (const requestId of this.#pending.keys())
        void this.#send({ type: 'cancel', requestId }).catch(() => {})
      this.#shutdown(new StreamClosedError('session closed'))
    }
    const ms = this.#opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS
    const timer = setTimeout(() => {
      this.stream.abort(new TimeoutError(`the peer did not close the stream within ${ms} ms`))
    }, ms)
    try {
      // Every frame queued goes before the end: these cancels, and those of requests aborted.
      await this.#writer.written()
      await this.stream.close().catch(() => {})
    } finally {
      clearTimeout(timer)
    }
  }

  abort(err: HaulError): void {
    this.#shutdown(err)
    this.stream.abort(err)
  }

  async #send(msg: TransferMessage): Promise<void> {
    await this.#writer.send(msg)
  }

  async #readLoop(iterator: AsyncIterator<Uint8Array | Uint8ArrayList>): Promise<void> {
    try {
      while (true) {
        const next = await iterator.next()
        if (next.done) break
        this.#bytesIn += next.value.byteLength
        this.#decoder.push(next.value)
        this.#dispatchBuffered()
      }
      this.#decoder.finish()
      this.#shutdown(
        new StreamClosedError(
          this.#remoteMaxFrame === undefined
            ? 'the peer closed the stream before saying hello'
            : 'the peer closed the stream',
        ),
      )
    } catch (err) {
      const e = asStreamFailure(err)
      this.#shutdown(e)
      this.stream.abort(e)
    }
  }

  #dispatchBuffered(): void {
    for (const msg of this.#decoder.frames()) {
      if (msg.type === 'error' && msg.requestId === 0) throw errorFromWire(msg.code, msg.message)
      if (this.#remoteMaxFrame === undefined) {
        this.#onHello(msg)
        continue
      }
      if (msg.type === 'hello') throw new ProtocolViolationError('hello sent twice')
      if (msg.type === 'chunk' && !this.#codecs.includes(msg.codec)) {
        throw new ProtocolViolationError(
          `the peer sent a chunk in ${msg.codec}, which this receiver's hello did not offer (${this.#codecs.join(', ')})`,
        )
      }
      if (msg.requestId >= this.#nextId || msg.requestId === 0) {
        throw new ProtocolViolationError(
          `the peer sent ${msg.type} for request ${msg.requestId}, never asked`,
        )
      }
      // Replies to requests we already gave up on (cancelled, timed out, done) are dropped.
      this.#pending.get(msg.requestId)?.onFrame(msg)
    }
  }

  /** The peer's first frame. Its version was checked by the decoder (UnsupportedVersionError). */
  #onHello(msg: TransferMessage): void {
    if (msg.type !== 'hello') throw new ProtocolViolationError(`expected hello, got ${msg.type}`)
    this.#remoteMaxFrame = msg.maxFrame
    this.#writer.maxFrame = msg.maxFrame
    this.#opts.onHello?.()
  }

  #shutdown(err: HaulError): void {
    if (this.#closed !== undefined) return
    this.#closed = err
    // A chunk frame the stream ended inside still showed the peer serving (see chunkBytes).
    if (this.#chunkRequests > 0) this.#chunkBytes += this.#decoder.buffered
    for (const p of [...this.#pending.values()]) p.reject(err)
    this.#pending.clear()
  }
}
