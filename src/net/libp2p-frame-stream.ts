import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import {
  type HaulError,
  InvalidArgumentError,
  isHaulError,
  StreamClosedError,
  TimeoutError,
} from '../errors.ts'
import type { FrameStream, StreamHooks, WrapStreamOptions } from './stream-io.ts'
import { StreamWriter, type WriteOptions } from './stream-writer.ts'

/**
 * The FrameStream that wrapStream (stream-io.ts) makes of a libp2p stream: the read side (a
 * bounded queue that pauses the stream), the idle timer, and how the stream ends. The write
 * side is stream-writer.ts.
 *
 * DEV NOTES — libp2p 3 streams, as read from @libp2p/utils 7 and yamux 8 (the
 * write side's notes are in stream-writer.ts):
 * - yamux grants window on receipt, not on consumption, and the stream's own
 *   async iterator pushes into an unbounded queue. We therefore listen to
 *   'message' ourselves and `pause()` past a high-water mark: a paused yamux
 *   stream stops sending window updates, so the remote stalls after at most one
 *   window (node.ts sizes `maxReadBufferLength` for that).
 * - The stream's `inactivityTimeout` field is not enforced by yamux; the idle
 *   timer lives here. While a write waits for the remote's window, only bytes
 *   the remote takes count as activity: a peer that keeps sending small frames
 *   but reads nothing would otherwise hold our unsent data forever.
 * - 'close' without an error also fires when the connection drops. Only a
 *   'remoteCloseWrite' (yamux FIN) is a clean end of the incoming data.
 */

type Chunk = Uint8Array | Uint8ArrayList

export class Libp2pFrameStream implements FrameStream {
  readonly remotePeer: string
  readonly remoteAddr: string
  readonly incoming: AsyncIterable<Chunk>
  readonly #s: Stream
  readonly #writer: StreamWriter
  readonly #idleMs: number
  readonly #highWater: number
  readonly #onClose: (() => void) | undefined
  readonly #circuitBytesLeft: (() => number | undefined) | undefined
  #queue: Chunk[] = []
  #queueHead = 0
  #queuedBytes = 0
  #remoteEnded = false
  #readEnded = false
  #closed = false
  #failure: HaulError | undefined
  /** We aborted the stream: what it received and was not read is dropped at once. */
  #abortedHere = false
  #iterated = false
  #detached = false
  #inputStopped = false
  #wakeReader: (() => void) | undefined
  readonly #closeWaiters: Array<() => void> = []
  #lastActivity = performance.now()
  #timer: NodeJS.Timeout | undefined

  constructor(
    stream: Stream,
    o: Required<Omit<WrapStreamOptions, StreamHooks>>,
    hooks: Pick<WrapStreamOptions, StreamHooks>,
  ) {
    this.#s = stream
    this.#writer = new StreamWriter(stream, o.writeSliceBytes, hooks.sendLedger, {
      failure: () => this.#failure,
      touch: () => this.#touch(),
      abort: (err) => this.abort(err),
    })
    this.remotePeer = o.remotePeer
    this.remoteAddr = o.remoteAddr
    this.#idleMs = o.idleTimeoutMs
    this.#highWater = o.maxBufferedIncoming
    this.#onClose = hooks.onClose
    this.#circuitBytesLeft = hooks.circuitBytesLeft
    this.incoming = { [Symbol.asyncIterator]: () => this.#iterate() }
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('remoteCloseWrite', this.#onRemoteCloseWrite)
    stream.addEventListener('end', this.#onEnd)
    stream.addEventListener('close', this.#onStreamClose)
    // The stream may already be half-closed or finished by the time we wrap it.
    if (stream.remoteWriteStatus === 'closed' && stream.status === 'open') this.#remoteEnded = true
    if (stream.readableEnded) this.#readEnded = true
    if (stream.status !== 'open') {
      // Deferred so `onClose` never runs before wrapStream has returned.
      const failure =
        stream.status === 'closed' ? undefined : new StreamClosedError(`stream is already ${stream.status}`)
      queueMicrotask(() => this.#finish(failure))
    } else {
      this.#timer = setTimeout(this.#onIdleTimer, this.#idleMs)
      this.#timer.unref()
    }
  }

  get protocol(): string {
    return this.#s.protocol
  }

  get incomingBufferedBytes(): number {
    return this.#queuedBytes + this.#s.readBufferLength
  }

  get outgoingBufferedBytes(): number {
    return this.#s.writeBufferLength
  }

  writeStalledMs(deepAfterMs?: number): number {
    return this.#writer.stalledMs(performance.now(), deepAfterMs)
  }

  get closed(): boolean {
    return this.#closed
  }

  circuitBytesLeft(): number | undefined {
    return this.#circuitBytesLeft?.()
  }

  write(parts: readonly Uint8Array[], opts?: WriteOptions): Promise<void> {
    return this.#writer.write(parts, opts)
  }

  closeWrite(): Promise<void> {
    return this.#writer.closeWrite()
  }

  async close(opts: { stopInput?: boolean } = {}): Promise<void> {
    if (opts.stopInput === true) this.#inputStopped = true
    await this.closeWrite().catch(() => {})
    this.#detach()
    if (this.#closed) return
    // The idle timer bounds this wait: a remote that never closes gets aborted.
    await new Promise<void>((resolve) => this.#closeWaiters.push(resolve))
  }

  abort(err: Error): void {
    if (this.#closed) return
    this.#failure ??= toHaulError(err)
    this.#abortedHere = true
    this.#s.abort(err)
    // libp2p emits 'close' synchronously from abort(); finish anyway in case it did not.
    this.#finish(this.#failure)
  }

  async *#iterate(): AsyncGenerator<Chunk> {
    if (this.#iterated) throw new InvalidArgumentError('incoming can be iterated only once')
    this.#iterated = true
    try {
      while (true) {
        // What the peer sent before it reset the stream (or the connection dropped) is delivered
        // first: an error frame followed by a reset is the usual way to be cut off, and both may
        // arrive in one read while the consumer is busy.
        const queued = this.#queueHead < this.#queue.length
        if (this.#failure !== undefined && (this.#abortedHere || !queued)) throw this.#failure
        if (queued) {
          yield this.#shift()
          continue
        }
        if (this.#readEnded || (this.#closed && this.#remoteEnded && this.#s.readBufferLength === 0)) return
        await new Promise<void>((resolve) => {
          this.#wakeReader = resolve
        })
      }
    } finally {
      this.#detach()
    }
  }

  #shift(): Chunk {
    const chunk = this.#queue[this.#queueHead]!
    this.#queue[this.#queueHead++] = undefined as unknown as Chunk
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead)
      this.#queueHead = 0
    }
    this.#queuedBytes -= chunk.byteLength
    this.#touch()
    if (this.#queuedBytes <= this.#highWater / 2 && this.#s.readStatus === 'paused') this.#s.resume()
    return chunk
  }

  /**
   * The consumer is gone: drop what it did not read and keep the remote flowing, unless the
   * input was stopped (then the stream stays paused, its window shut).
   */
  #detach(): void {
    if (this.#inputStopped && this.#s.readStatus === 'readable') this.#s.pause()
    if (this.#detached) return
    this.#detached = true
    this.#queue = []
    this.#queueHead = 0
    this.#queuedBytes = 0
    if (!this.#inputStopped && this.#s.readStatus === 'paused') this.#s.resume()
  }

  #wake(): void {
    const w = this.#wakeReader
    this.#wakeReader = undefined
    w?.()
  }

  #touch(): void {
    this.#lastActivity = performance.now()
  }

  readonly #onIdleTimer = (): void => {
    this.#timer = undefined
    if (this.#closed) return
    const now = performance.now()
    // Our bytes on their way are polled: what the remote takes raises no event of its own. On a
    // slow link a whole window's frame is on its way for longer than the bound, with nothing
    // moving on the stream itself; the kernel is asked only once a quarter of the bound passed.
    const writer = this.#writer
    const waiting = writer.waiting
    const deepAfter = this.#idleMs / 4
    const idle = waiting
      ? writer.stalledMs(now, deepAfter)
      : Math.min(now - this.#lastActivity, writer.movedAgoMs(now, deepAfter))
    if (idle >= this.#idleMs) {
      const what = waiting ? 'the peer took none of our data' : 'no data moved on the stream'
      this.abort(new TimeoutError(`${what} for ${this.#idleMs} ms`))
      return
    }
    const next = this.#idleMs - idle
    this.#timer = setTimeout(
      this.#onIdleTimer,
      Math.ceil(writer.inFlight ? Math.min(next, this.#idleMs / 4) : next),
    )
    this.#timer.unref()
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    this.#touch()
    if (this.#detached) return
    this.#queue.push(evt.data)
    this.#queuedBytes += evt.data.byteLength
    if (this.#queuedBytes >= this.#highWater && this.#s.readStatus === 'readable') this.#s.pause()
    this.#wake()
  }

  readonly #onRemoteCloseWrite = (): void => {
    this.#remoteEnded = true
    this.#touch()
    this.#wake()
  }

  readonly #onEnd = (): void => {
    // 'end' also fires when our read side is closed by abort; only a FIN is a clean end.
    if (this.#remoteEnded) this.#readEnded = true
    this.#wake()
  }

  readonly #onStreamClose = (evt: StreamCloseEvent): void => {
    let failure: HaulError | undefined
    if (evt.error !== undefined) {
      failure = evt.local ? toHaulError(evt.error) : new StreamClosedError('the peer reset the stream')
    } else if (!this.#remoteEnded) {
      failure = new StreamClosedError('the connection closed before the peer finished sending')
    }
    this.#finish(failure)
  }

  #finish(failure: HaulError | undefined): void {
    if (failure !== undefined) this.#failure ??= failure
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    const s = this.#s
    s.removeEventListener('remoteCloseWrite', this.#onRemoteCloseWrite)
    s.removeEventListener('close', this.#onStreamClose)
    // 'message' and 'end' stay: data still in a paused read buffer is delivered on resume.
    this.#wake()
    for (const w of this.#closeWaiters.splice(0)) w()
    this.#onClose?.()
  }
}

function toHaulError(err: Error): HaulError {
  if (isHaulError(err)) return err
  // An AbortSignal.timeout() below haul (libp2p's own deadlines) aborts with a DOMException of this name.
  if (err.name === 'TimeoutError') return new TimeoutError(`stream timed out: ${err.message}`, { cause: err })
  return new StreamClosedError(`stream aborted: ${err.message}`, { cause: err })
}
