import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  AbortedError,
  ConfigInvalidError,
  type HaulError,
  InvalidArgumentError,
  isHaulError,
  StreamClosedError,
  TimeoutError,
} from '../errors.ts'
import { KiB, MiB } from '../types.ts'
import type { ConnectionSendLedger } from './send-ledger.ts'

/**
 * DEV NOTES — libp2p 3 streams, as read from @libp2p/utils 7 and yamux 8:
 * - `send()` always queues; `false` only means "stop now". Data keeps arriving in
 *   the stream's `writeBuffer` if we ignore it, and a muxer-wide 'drain' wakes
 *   every stream even when this stream's own window is still 0. So we send a part
 *   only when `writableNeedsDrain` is false AND the stream's write buffer is
 *   empty: at most one part is ever queued inside libp2p per stream.
 * - yamux grants window on receipt, not on consumption, and the stream's own
 *   async iterator pushes into an unbounded queue. We therefore listen to
 *   'message' ourselves and `pause()` past a high-water mark: a paused yamux
 *   stream stops sending window updates, so the remote stalls after at most one
 *   window (node.ts sizes `maxReadBufferLength` for that).
 * - The stream's `inactivityTimeout` field is not enforced by yamux; the idle
 *   timer lives here.
 * - 'close' without an error also fires when the connection drops. Only a
 *   'remoteCloseWrite' (yamux FIN) is a clean end of the incoming data.
 */

export interface WriteOptions {
  signal?: AbortSignal
  /**
   * The caller wants `parts` back: called once libp2p holds no reference to them (they were
   * encrypted, or the connection is gone), after `write` resolved. Never called when `write`
   * rejects (the memory may still be referenced: drop it).
   */
  onReleased?: () => void
}

/**
 * Piece size when `write` must copy (a stream without a send ledger, see
 * `onReleased`). Small enough that the copies come from the allocator's cheap
 * path (1 MiB buffers cost ~3 ms/MiB in page faults and GC here, 64 KiB ones
 * ~0.4), and one Noise message each.
 */
export const COPY_SLICE_BYTES = 64 * 1024

/**
 * part[from, end) copied into COPY_SLICE_BYTES pieces, sent as one list: one
 * send, so still one yamux frame and one socket write per slice.
 */
function copyInPieces(part: Uint8Array, from: number, end: number): Uint8ArrayList {
  const list = new Uint8ArrayList()
  for (let at = from; at < end; at += COPY_SLICE_BYTES) {
    list.append(Uint8Array.prototype.slice.call(part, at, Math.min(end, at + COPY_SLICE_BYTES)))
  }
  return list
}

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
   * bytes moved for idleTimeoutMs). Can be iterated once.
   */
  readonly incoming: AsyncIterable<Uint8Array | Uint8ArrayList>
  /** Flushes pending bytes and closes our write side; the remote sees the end of its `incoming`. */
  closeWrite(): Promise<void>
  /**
   * Closes our write side, discards unread incoming data, and resolves once both
   * sides are closed (or the stream was aborted by the idle timer). Never rejects.
   */
  close(): Promise<void>
  /** Resets the stream at once; pending and later calls fail with `err` (HaulErrors as is). */
  abort(err: Error): void
  readonly remotePeer: string
  readonly protocol: string
  /** Bytes received but not yet read (our queue plus libp2p's read buffer). */
  readonly incomingBufferedBytes: number
  /** Bytes handed to the stream and not yet passed to the muxer. */
  readonly outgoingBufferedBytes: number
  /** True once the stream is finished (closed both ways, reset or aborted). */
  readonly closed: boolean
}

export interface WrapStreamOptions {
  /**
   * Abort with TimeoutError when no byte was received, read by the consumer,
   * sent, or drained for this long (ms).
   * @default 30_000
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
  /** The stream's connection ledger: lets `write` lend views instead of copies (see send-ledger.ts). */
  sendLedger?: ConnectionSendLedger | undefined
  /** Called once when the stream is finished, however it ended. */
  onClose?: () => void
}

export const defaultWrapStreamOptions: Required<Omit<WrapStreamOptions, 'onClose' | 'sendLedger'>> = {
  idleTimeoutMs: 30_000,
  maxBufferedIncoming: 1 * MiB,
  writeSliceBytes: 1 * MiB,
  remotePeer: '',
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
  }
  verifyIdleTimeout(o.idleTimeoutMs)
  if (!Number.isSafeInteger(o.maxBufferedIncoming) || o.maxBufferedIncoming <= 0) {
    throw new ConfigInvalidError('maxBufferedIncoming must be a positive integer')
  }
  if (!Number.isSafeInteger(o.writeSliceBytes) || o.writeSliceBytes < KiB) {
    throw new ConfigInvalidError('writeSliceBytes must be an integer >= 1024')
  }
  return new Libp2pFrameStream(stream, o, opts.onClose, opts.sendLedger)
}

type Chunk = Uint8Array | Uint8ArrayList

class Libp2pFrameStream implements FrameStream {
  readonly remotePeer: string
  readonly incoming: AsyncIterable<Chunk>
  readonly #s: Stream
  readonly #idleMs: number
  readonly #highWater: number
  readonly #slice: number
  readonly #onClose: (() => void) | undefined
  readonly #ledger: ConnectionSendLedger | undefined
  #queue: Chunk[] = []
  #queueHead = 0
  #queuedBytes = 0
  #remoteEnded = false
  #readEnded = false
  #closed = false
  #failure: HaulError | undefined
  #iterated = false
  #detached = false
  #writing = false
  #wakeReader: (() => void) | undefined
  readonly #closeWaiters: Array<() => void> = []
  #lastActivity = performance.now()
  #timer: NodeJS.Timeout | undefined

  constructor(
    stream: Stream,
    o: Required<Omit<WrapStreamOptions, 'onClose' | 'sendLedger'>>,
    onClose?: () => void,
    ledger?: ConnectionSendLedger,
  ) {
    this.#s = stream
    this.#ledger = ledger
    this.remotePeer = o.remotePeer
    this.#idleMs = o.idleTimeoutMs
    this.#highWater = o.maxBufferedIncoming
    this.#slice = o.writeSliceBytes
    this.#onClose = onClose
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

  get closed(): boolean {
    return this.#closed
  }

  async write(parts: readonly Uint8Array[], opts: WriteOptions = {}): Promise<void> {
    const { signal, onReleased } = opts
    const copy = onReleased !== undefined && this.#ledger === undefined
    if (signal?.aborted) throw new AbortedError()
    if (this.#failure !== undefined) throw this.#failure
    if (this.#writing)
      throw new InvalidArgumentError('write() called while another write is pending: serialize writes')
    this.#writing = true
    let sent = 0
    try {
      for (const part of parts) {
        for (let off = 0; off < part.byteLength; off += this.#slice) {
          if (!this.#writable()) await this.#waitWritable(signal)
          const end = Math.min(part.byteLength, off + this.#slice)
          const slice = copy
            ? copyInPieces(part, off, end)
            : off === 0 && end === part.byteLength
              ? part
              : part.subarray(off, end)
          try {
            this.#s.send(slice)
          } catch (err) {
            throw (
              this.#failure ??
              new StreamClosedError(`cannot write: ${(err as Error).message}`, { cause: err })
            )
          }
          sent++
          this.#touch()
        }
      }
    } catch (err) {
      if (sent > 0 && err instanceof AbortedError) this.abort(err)
      throw err
    } finally {
      this.#writing = false
    }
    if (onReleased === undefined) return
    if (copy) onReleased()
    else this.#releaseWhenSent(onReleased)
  }

  /**
   * The last slice may still wait in this stream's queue (its window ran out): once that
   * empties (or the stream ends), everything is in the connection's queue and the ledger
   * takes over.
   */
  #releaseWhenSent(release: () => void): void {
    const ledger = this.#ledger!
    const s = this.#s
    if (s.writeBufferLength === 0 || s.status !== 'open') {
      ledger.afterQueued(release)
      return
    }
    const handOver = (): void => {
      s.removeEventListener('idle', handOver)
      s.removeEventListener('close', handOver)
      ledger.afterQueued(release)
    }
    s.addEventListener('idle', handOver)
    s.addEventListener('close', handOver)
  }

  async closeWrite(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure
    const ws = this.#s.writeStatus
    if (ws === 'closed' || ws === 'closing') return
    try {
      await this.#s.close()
    } catch (err) {
      throw (
        this.#failure ??
        new StreamClosedError(`cannot close the stream: ${(err as Error).message}`, { cause: err })
      )
    }
  }

  async close(): Promise<void> {
    await this.closeWrite().catch(() => {})
    this.#detach()
    if (this.#closed) return
    // The idle timer bounds this wait: a remote that never closes gets aborted.
    await new Promise<void>((resolve) => this.#closeWaiters.push(resolve))
  }

  abort(err: Error): void {
    if (this.#closed) return
    this.#failure ??= toHaulError(err)
    this.#s.abort(err)
    // libp2p emits 'close' synchronously from abort(); finish anyway in case it did not.
    this.#finish(this.#failure)
  }

  #writable(): boolean {
    if (this.#failure !== undefined) throw this.#failure
    const ws = this.#s.writeStatus
    if (ws !== 'writable') throw new StreamClosedError(`cannot write: the stream's write side is ${ws}`)
    return !this.#s.writableNeedsDrain && this.#s.writeBufferLength === 0
  }

  /**
   * Waits for one of the events that can make the stream writable again. Every
   * wake-up re-checks: a 'drain' from the muxer may come while this stream's
   * window is still exhausted.
   */
  async #waitWritable(signal: AbortSignal | undefined): Promise<void> {
    while (!this.#writable()) {
      const s = this.#s
      await new Promise<void>((resolve, reject) => {
        const cleanup = (): void => {
          s.removeEventListener('drain', done)
          s.removeEventListener('idle', done)
          s.removeEventListener('close', done)
          signal?.removeEventListener('abort', onAbort)
        }
        const done = (): void => {
          cleanup()
          resolve()
        }
        const onAbort = (): void => {
          cleanup()
          reject(new AbortedError())
        }
        s.addEventListener('drain', done)
        s.addEventListener('idle', done)
        s.addEventListener('close', done)
        signal?.addEventListener('abort', onAbort)
      })
    }
  }

  async *#iterate(): AsyncGenerator<Chunk> {
    if (this.#iterated) throw new InvalidArgumentError('incoming can be iterated only once')
    this.#iterated = true
    try {
      while (true) {
        if (this.#failure !== undefined) throw this.#failure
        if (this.#queueHead < this.#queue.length) {
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

  /** The consumer is gone: drop what it did not read and keep the remote flowing. */
  #detach(): void {
    if (this.#detached) return
    this.#detached = true
    this.#queue = []
    this.#queueHead = 0
    this.#queuedBytes = 0
    if (this.#s.readStatus === 'paused') this.#s.resume()
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
    const idle = performance.now() - this.#lastActivity
    if (idle >= this.#idleMs) {
      this.abort(new TimeoutError(`no data moved on the stream for ${this.#idleMs} ms`))
      return
    }
    this.#timer = setTimeout(this.#onIdleTimer, Math.ceil(this.#idleMs - idle))
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
  return new StreamClosedError(`stream aborted: ${err.message}`, { cause: err })
}
