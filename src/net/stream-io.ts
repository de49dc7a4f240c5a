import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { engineDefaults } from '../engine/config/resolve.ts'
import {
  ConfigInvalidError,
  type HaulError,
  InvalidArgumentError,
  isHaulError,
  StreamClosedError,
  TimeoutError,
} from '../errors.ts'
import { KiB, MiB } from '../types.ts'
import { StreamWriter, type WriteOptions } from './stream-writer.ts'
import type { ConnectionSendLedger } from './tuning/send-ledger.ts'

export { COPY_SLICE_BYTES, type WriteOptions } from './stream-writer.ts'

/**
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

export interface FrameStream {
  /**
   * Sends byte chunks honouring backpressure: before each part waits until the
   * stream has no unsent bytes and does not need a drain. Rejects with
   * StreamClosedError if the stream closes or resets, with AbortedError on
   * `signal`, with the abort reason (e.g. TimeoutError) if the stream was aborted.
   * One write at a time: a concurrent call rejects with InvalidArgumentError.
   * A write cancelled after some of its parts went out aborts the stream (the
   * remote would otherwise see half a frame).
   * libp2p keeps references to what it was given until the bytes are encrypted,
   * which can be after `write` resolves; `onReleased` says when that is over. On
   * a stream without a send ledger libp2p is given copies instead (in
   * {@link COPY_SLICE_BYTES} pieces) and `onReleased` runs as `write` resolves.
   */
  write(parts: readonly Uint8Array[], opts?: WriteOptions): Promise<void>
  /**
   * Incoming data, ending when the remote closes its write side. Throws the
   * failure (StreamClosedError on reset or connection loss, TimeoutError when no
   * bytes moved for idleTimeoutMs, or a write waited that long with none of its
   * bytes taken). Can be iterated once.
   */
  readonly incoming: AsyncIterable<Uint8Array | Uint8ArrayList>
  /** Flushes pending bytes and closes our write side; the remote sees the end of its `incoming`. */
  closeWrite(): Promise<void>
  /**
   * Closes our write side, discards unread incoming data, and resolves once both
   * sides are closed (or the stream was aborted by the idle timer). Never rejects.
   * With `stopInput`, the remote's further data is not taken either (its window
   * shuts, at most one window waits in libp2p until the stream ends): for a peer
   * being cut off, which could otherwise keep us receiving and dropping its bytes.
   */
  close(opts?: { stopInput?: boolean }): Promise<void>
  /** Resets the stream at once; pending and later calls fail with `err` (HaulErrors as is). */
  abort(err: Error): void
  readonly remotePeer: string
  /** The remote end's multiaddr as its connection reports it ('' when not known). */
  readonly remoteAddr: string
  readonly protocol: string
  /** Bytes received but not yet read (our queue plus libp2p's read buffer). */
  readonly incomingBufferedBytes: number
  /** Bytes handed to the stream and not yet passed to the muxer. */
  readonly outgoingBufferedBytes: number
  /**
   * How long the stream has waited to send with none of our bytes taken by the remote (its
   * window stayed shut) or moving toward it (on their way through the connection, the kernel
   * and the link: on a slow link the remote grants window only once a whole window's frame has
   * arrived); 0 when nothing waits. Inbound data does not reset it. Once nothing moved for
   * `deepAfterMs` (default 1 s), the kernel is asked what the remote acknowledged. Sampled:
   * progress since the last call counts as made at this call, so polling every T ms understates
   * a stall by less than T and never overstates it.
   */
  writeStalledMs(deepAfterMs?: number): number
  /** True once the stream is finished (closed both ways, reset or aborted). */
  readonly closed: boolean
  /**
   * Bytes the relay still lets this stream's connection carry, both ways together, when its
   * circuit has a data limit (circuit relay v2); undefined on a connection without one.
   */
  circuitBytesLeft(): number | undefined
}

export interface WrapStreamOptions {
  /**
   * Abort with TimeoutError when no byte was received, read by the consumer,
   * sent, or drained for this long (ms); while a write waits for the remote's
   * window, when none of its bytes were taken for this long, whatever arrives.
   * @default the engine's `timeouts.idleMs` default
   */
  idleTimeoutMs?: number
  /**
   * Received-but-unread bytes at which the stream is paused (resumed at half).
   * Worst case held per stream: this + one yamux window + one data frame.
   * @default 1 MiB
   */
  maxBufferedIncoming?: number
  /**
   * Largest slice of a part handed to the muxer at once; yamux sends each slice
   * as (at most) one data frame. Measured (bench/raw-stream.ts): 64 KiB slices
   * cost ~30% throughput because every frame makes the receiver send a window
   * update (its own Noise message and syscall); 256 KiB to 4 MiB are equal
   * within noise. 1 MiB keeps one stream from holding the connection for long.
   * @default 1 MiB
   */
  writeSliceBytes?: number
  /** Peer id string reported by `remotePeer`. @default '' */
  remotePeer?: string
  /** Multiaddr string reported by `remoteAddr`. @default '' */
  remoteAddr?: string
  /** The stream's connection ledger: lets `write` lend views instead of copies (see send-ledger.ts). */
  sendLedger?: ConnectionSendLedger | undefined
  /** Called once when the stream is finished, however it ended. */
  onClose?: () => void
  /** The connection's remaining circuit bytes (see FrameStream.circuitBytesLeft). */
  circuitBytesLeft?: () => number | undefined
}

type Hooks = 'onClose' | 'sendLedger' | 'circuitBytesLeft'

export const defaultWrapStreamOptions: Required<Omit<WrapStreamOptions, Hooks>> = {
  idleTimeoutMs: engineDefaults.timeouts.idleMs,
  maxBufferedIncoming: 1 * MiB,
  writeSliceBytes: 1 * MiB,
  remotePeer: '',
  remoteAddr: '',
}

const MAX_TIMER_MS = 2_147_483_647

export function verifyIdleTimeout(ms: number, name = 'idleTimeoutMs'): void {
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_TIMER_MS) {
    throw new ConfigInvalidError(`${name} must be an integer between 1 and ${MAX_TIMER_MS} ms`)
  }
}

export function wrapStream(stream: Stream, opts: WrapStreamOptions = {}): FrameStream {
  const o = {
    idleTimeoutMs: opts.idleTimeoutMs ?? defaultWrapStreamOptions.idleTimeoutMs,
    maxBufferedIncoming: opts.maxBufferedIncoming ?? defaultWrapStreamOptions.maxBufferedIncoming,
    writeSliceBytes: opts.writeSliceBytes ?? defaultWrapStreamOptions.writeSliceBytes,
    remotePeer: opts.remotePeer ?? defaultWrapStreamOptions.remotePeer,
    remoteAddr: opts.remoteAddr ?? defaultWrapStreamOptions.remoteAddr,
  }
  verifyIdleTimeout(o.idleTimeoutMs)
  if (!Number.isSafeInteger(o.maxBufferedIncoming) || o.maxBufferedIncoming <= 0) {
    throw new ConfigInvalidError('maxBufferedIncoming must be a positive integer')
  }
  if (!Number.isSafeInteger(o.writeSliceBytes) || o.writeSliceBytes < KiB) {
    throw new ConfigInvalidError('writeSliceBytes must be an integer >= 1024')
  }
  return new Libp2pFrameStream(stream, o, opts)
}

type Chunk = Uint8Array | Uint8ArrayList

class Libp2pFrameStream implements FrameStream {
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
    o: Required<Omit<WrapStreamOptions, Hooks>>,
    hooks: Pick<WrapStreamOptions, Hooks>,
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
