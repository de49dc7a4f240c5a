import type { Uint8ArrayList } from 'uint8arraylist'
import {
  AbortedError,
  errorFromWire,
  type HaulError,
  ProtocolViolationError,
  StreamClosedError,
  TimeoutError,
  UnsupportedVersionError,
} from '../errors.ts'
import type { FrameStream } from '../net/stream-io.ts'
import { FrameDecoder, type PayloadAllocator } from '../protocol/decoder.ts'
import { encodeMessage } from '../protocol/encoder.ts'
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
  signal?: AbortSignal
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
  readonly remoteMaxFrame: number
  #pending = new Map<number, Pending>()
  #nextId = 1
  #closed: HaulError | undefined
  #opts: RemoteSessionOptions
  #decoder: FrameDecoder
  #writer: FrameWriter

  private constructor(
    stream: FrameStream,
    remoteMaxFrame: number,
    decoder: FrameDecoder,
    opts: RemoteSessionOptions,
  ) {
    this.stream = stream
    this.remoteMaxFrame = remoteMaxFrame
    this.#decoder = decoder
    this.#opts = opts
    this.#writer = new FrameWriter(stream, { maxFrame: remoteMaxFrame, maxQueued: 1024 })
  }

  /** Exchanges hello on an opened stream and starts the reader loop. */
  static async start(stream: FrameStream, opts: RemoteSessionOptions): Promise<RemoteSession> {
    const decoder = new FrameDecoder({
      maxFrame: opts.maxFrame,
      ...(opts.allocPayload === undefined ? {} : { allocPayload: opts.allocPayload }),
    })
    const signal = opts.signal
    await stream.write(
      encodeMessage({
        type: 'hello',
        version: PROTOCOL_VERSION,
        codecs: [...CODECS],
        maxFrame: opts.maxFrame,
      }),
      signal === undefined ? {} : { signal },
    )
    const iterator = stream.incoming[Symbol.asyncIterator]()
    let hello: ReplyOf<'hello'> | undefined
    while (hello === undefined) {
      const next = await withTimeout(
        iterator.next(),
        opts.requestTimeoutMs,
        'the peer did not answer hello',
        signal,
      )
      if (next.done) throw new StreamClosedError('the peer closed the stream before saying hello')
      decoder.push(next.value)
      for (const msg of decoder.frames()) {
        if (msg.type === 'error') throw errorFromWire(msg.code, msg.message)
        if (msg.type !== 'hello') throw new ProtocolViolationError(`expected hello, got ${msg.type}`)
        hello = msg
        break
      }
    }
    if (hello.version !== PROTOCOL_VERSION) {
      throw new UnsupportedVersionError(
        `peer speaks haul protocol ${hello.version}, we speak ${PROTOCOL_VERSION}: upgrade the older side`,
      )
    }
    const session = new RemoteSession(stream, hello.maxFrame, decoder, opts)
    // Frames that arrived in the same read as hello.
    session.#dispatchBuffered()
    void session.#readLoop(iterator)
    return session
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  get pendingRequests(): number {
    return this.#pending.size
  }

  /** Sends one request and resolves when its final frame (`end`, or the single reply) arrives. */
  request(
    build: (requestId: number) => TransferMessage,
    onFrame: (msg: TransferMessage) => 'done' | 'more',
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    const requestId = this.#nextId++
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
    const cleanup = (): void => {
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
    this.#send(build(requestId)).catch((err) => fail(err as HaulError))
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
        this.#decoder.push(next.value)
        this.#dispatchBuffered()
      }
      this.#decoder.finish()
      this.#shutdown(new StreamClosedError('the peer closed the stream'))
    } catch (err) {
      const e = err as HaulError
      this.#shutdown(
        typeof e?.code === 'string'
          ? e
          : new StreamClosedError(`stream failed: ${String(err)}`, { cause: err }),
      )
      this.stream.abort(e instanceof Error ? e : new Error(String(e)))
    }
  }

  #dispatchBuffered(): void {
    for (const msg of this.#decoder.frames()) {
      if (msg.type === 'hello') throw new ProtocolViolationError('hello sent twice')
      if (msg.type === 'error' && msg.requestId === 0) throw errorFromWire(msg.code, msg.message)
      // Replies to requests we already gave up on (cancelled, timed out) are dropped.
      this.#pending.get(msg.requestId)?.onFrame(msg)
    }
  }

  #shutdown(err: HaulError): void {
    if (this.#closed !== undefined) return
    this.#closed = err
    for (const p of [...this.#pending.values()]) p.reject(err)
    this.#pending.clear()
  }
}

export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  signal?: AbortSignal,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what} within ${ms} ms`)), ms)
        if (signal !== undefined) {
          onAbort = () => reject(new AbortedError())
          if (signal.aborted) onAbort()
          else signal.addEventListener('abort', onAbort, { once: true })
        }
      }),
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  }
}
