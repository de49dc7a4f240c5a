import type { Uint8ArrayList } from 'uint8arraylist'
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
import { CODECS } from '../types.ts'
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
  /** A request that sees no reply frame for this long fails with TimeoutError. */
  requestTimeoutMs: number
  /** Where chunk payloads are gathered (recycled buffers); default: a fresh buffer each. */
  allocPayload?: PayloadAllocator
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
  #decoder: FrameDecoder
  #writer: FrameWriter
  /** get-chunks requests waiting for their replies. */
  #chunkRequests = 0
  #chunkBytes = 0

  private constructor(stream: FrameStream, decoder: FrameDecoder, opts: RemoteSessionOptions) {
    this.stream = stream
    this.#decoder = decoder
    this.#opts = opts
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
      .#send({ type: 'hello', version: PROTOCOL_VERSION, codecs: [...CODECS], maxFrame: opts.maxFrame })
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
   * Bytes read off the stream while a get-chunks request was waiting: chunk data arriving, whole
   * or not. A transfer whose connection is cut before a chunk completes has still seen its peer
   * serve (see FetchJob.progressMark).
   */
  get chunkBytes(): number {
    return this.#chunkBytes
  }

  /** Sends one request and resolves when its final frame (`end`, or the single reply) arrives. */
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
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        fail(new TimeoutError(`no reply from the peer for ${this.#opts.requestTimeoutMs} ms`))
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
        arm()
        if (msg.type === 'error') return fail(errorFromWire(msg.code, msg.message))
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

  async close(): Promise<void> {
    if (this.#closed === undefined) this.#shutdown(new StreamClosedError('session closed'))
    await this.stream.close().catch(() => {})
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
        if (this.#chunkRequests > 0) this.#chunkBytes += next.value.byteLength
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
      // Replies to requests we already gave up on (cancelled, timed out) are dropped.
      this.#pending.get(msg.requestId)?.onFrame(msg)
    }
  }

  /** The peer's first frame. Its version was checked by the decoder (UnsupportedVersionError). */
  #onHello(msg: TransferMessage): void {
    if (msg.type !== 'hello') throw new ProtocolViolationError(`expected hello, got ${msg.type}`)
    this.#remoteMaxFrame = msg.maxFrame
    this.#writer.maxFrame = msg.maxFrame
  }

  #shutdown(err: HaulError): void {
    if (this.#closed !== undefined) return
    this.#closed = err
    for (const p of [...this.#pending.values()]) p.reject(err)
    this.#pending.clear()
  }
}
