import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { AbortedError, type HaulError, InvalidArgumentError, StreamClosedError } from '../errors.ts'
import type { ConnectionSendLedger, Flight } from './tuning/send-ledger.ts'

/**
 * The write side of a FrameStream (stream-io.ts): slicing, backpressure and handing
 * sent buffers back to their owner.
 *
 * libp2p 3's `send()` always queues; `false` only means "stop now". Data keeps
 * arriving in the stream's `writeBuffer` if we ignore it, and a muxer-wide 'drain'
 * wakes every stream even when this stream's own window is still 0. So we send a
 * part only when `writableNeedsDrain` is false AND the stream's write buffer is
 * empty: at most one part is ever queued inside libp2p per stream.
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
 * The bytes of `parts`, in order, as runs of at most `sliceBytes` (the last may be shorter),
 * each run the pieces of one or more parts. Every run becomes one `send`, so one yamux frame
 * and one socket write: a frame's header and a small payload go out together instead of as
 * two messages (a chunk frame is [header, payload]).
 */
export function* slices(parts: readonly Uint8Array[], sliceBytes: number): Generator<Uint8Array[]> {
  let run: Uint8Array[] = []
  let room = sliceBytes
  for (const part of parts) {
    let off = 0
    while (off < part.byteLength) {
      const n = Math.min(room, part.byteLength - off)
      run.push(off === 0 && n === part.byteLength ? part : part.subarray(off, off + n))
      off += n
      room -= n
      if (room === 0) {
        yield run
        run = []
        room = sliceBytes
      }
    }
  }
  if (run.length > 0) yield run
}

/**
 * A run copied into COPY_SLICE_BYTES pieces, sent as one list: one send, so still one yamux
 * frame and one socket write per run.
 */
function copyPieces(pieces: readonly Uint8Array[]): Uint8ArrayList {
  const list = new Uint8ArrayList()
  for (const piece of pieces) {
    for (let at = 0; at < piece.byteLength; at += COPY_SLICE_BYTES) {
      list.append(
        Uint8Array.prototype.slice.call(piece, at, Math.min(piece.byteLength, at + COPY_SLICE_BYTES)),
      )
    }
  }
  return list
}

/** The stream state the writer shares with the read side that owns it. */
export interface StreamWriterHost {
  /** Once set, every write step fails with it. */
  failure(): HaulError | undefined
  /** A slice went out: activity for the idle timer. */
  touch(): void
  /** Resets the whole stream (a write cancelled halfway through a frame). */
  abort(err: Error): void
}

/**
 * Unless its caller says otherwise, a stream that has seen nothing move this long asks the
 * kernel whether the peer is acknowledging its bytes (see Flight): never on a link where windows
 * reopen within a second.
 */
const DEEP_CHECK_AFTER_MS = 1_000

export class StreamWriter {
  readonly #s: Stream
  readonly #slice: number
  readonly #ledger: ConnectionSendLedger | undefined
  readonly #host: StreamWriterHost
  #writing = false
  /** Bytes handed to `send()`; less what still waits in the stream's buffer, what the peer took. */
  #handed = 0
  /** While a write waits to be writable: since when. */
  #waitingSince: number | undefined
  /** When our bytes last moved (see `movedAgoMs`). */
  #progressAt = 0
  #sentMark = 0
  /** The connection's bytes up to this stream's last that left it, while they move into the network. */
  #flight: Flight | undefined

  constructor(
    stream: Stream,
    sliceBytes: number,
    ledger: ConnectionSendLedger | undefined,
    host: StreamWriterHost,
  ) {
    this.#s = stream
    this.#slice = sliceBytes
    this.#ledger = ledger
    this.#host = host
  }

  /** See FrameStream.write. */
  async write(parts: readonly Uint8Array[], opts: WriteOptions = {}): Promise<void> {
    const { signal, onReleased } = opts
    const copy = onReleased !== undefined && this.#ledger === undefined
    if (signal?.aborted) throw new AbortedError()
    const failure = this.#host.failure()
    if (failure !== undefined) throw failure
    if (this.#writing)
      throw new InvalidArgumentError('write() called while another write is pending: serialize writes')
    this.#writing = true
    let sent = 0
    try {
      for (const pieces of slices(parts, this.#slice)) {
        if (!this.#writable()) await this.#waitWritable(signal)
        const slice = copy
          ? copyPieces(pieces)
          : pieces.length === 1
            ? pieces[0]!
            : new Uint8ArrayList(...pieces)
        try {
          this.#s.send(slice)
        } catch (err) {
          throw (
            this.#host.failure() ??
            new StreamClosedError(`cannot write: ${(err as Error).message}`, { cause: err })
          )
        }
        sent++
        this.#handed += slice.byteLength
        this.#progressAt = performance.now()
        this.#host.touch()
      }
    } catch (err) {
      if (sent > 0 && err instanceof AbortedError) this.#host.abort(err)
      throw err
    } finally {
      this.#writing = false
    }
    if (onReleased === undefined) return
    if (copy) onReleased()
    else this.#releaseWhenSent(onReleased)
  }

  /**
   * Bytes of our writes that have left this stream for the connection: the muxer sends only
   * what the peer's window admits, so this grows only as the peer takes what we write.
   */
  get sent(): number {
    return this.#handed - this.#s.writeBufferLength
  }

  /**
   * True while a write waits for the stream to take more, or the stream holds bytes of ours it
   * cannot send yet (the peer's window or the connection is full).
   */
  get waiting(): boolean {
    return this.#waitingSince !== undefined || this.#s.writeBufferLength > 0
  }

  /** True while bytes we wrote may still be on their way to the peer (see Flight). */
  get inFlight(): boolean {
    return this.waiting || this.#flight?.landed === false
  }

  /**
   * How long the stream has waited with none of our bytes moving (0 when it does not wait): see
   * `movedAgoMs`.
   */
  stalledMs(now = performance.now(), deepAfterMs = DEEP_CHECK_AFTER_MS): number {
    return this.waiting ? this.movedAgoMs(now, deepAfterMs) : 0
  }

  /**
   * How long ago our bytes last moved: handed to the stream, left it for the connection, or,
   * once they left it, went on into the network (see Flight: on a slow link the peer's window
   * opens only after a whole window's frame arrived). Once nothing moved for `deepAfterMs`, the
   * kernel is asked what the peer acknowledged. Sampled: progress since the last call counts as
   * made at this call, so a caller that polls every T ms understates a stall by less than T and
   * never overstates it (it never cuts a stream early).
   */
  movedAgoMs(now = performance.now(), deepAfterMs = DEEP_CHECK_AFTER_MS): number {
    const sent = this.sent
    if (sent !== this.#sentMark) {
      this.#sentMark = sent
      this.#progressAt = now
      this.#flight = this.#ledger?.flight()
    } else if (this.#flight?.moved(now - this.#progressAt >= deepAfterMs) === true) {
      this.#progressAt = now
    }
    return now - this.#progressAt
  }

  /** See FrameStream.closeWrite. */
  async closeWrite(): Promise<void> {
    const failure = this.#host.failure()
    if (failure !== undefined) throw failure
    const ws = this.#s.writeStatus
    if (ws === 'closed' || ws === 'closing') return
    try {
      await this.#s.close()
    } catch (err) {
      throw (
        this.#host.failure() ??
        new StreamClosedError(`cannot close the stream: ${(err as Error).message}`, { cause: err })
      )
    }
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

  #writable(): boolean {
    const failure = this.#host.failure()
    if (failure !== undefined) throw failure
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
    this.#waitingSince = this.#progressAt = performance.now()
    this.#sentMark = this.sent
    this.#flight = this.#ledger?.flight()
    try {
      await this.#waitEvents(signal)
    } finally {
      this.#waitingSince = undefined
    }
  }

  async #waitEvents(signal: AbortSignal | undefined): Promise<void> {
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
}
