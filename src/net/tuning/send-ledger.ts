import type { MessageStream, Stream, StreamMuxer } from '@libp2p/interface'
import { KiB } from '../../types.ts'
import { type Wire, wireOf } from './noise-stream.ts'

/**
 * Bytes of a waiting stream's flight that must reach the kernel before it counts as moving
 * again: a slow link passes this in half a second at 256 kbit/s and in 10 s at 13 kbit/s, while
 * a peer that reads its socket a few bytes at a time does not keep a stream alive with it.
 */
export const FLIGHT_PROGRESS_BYTES = 16 * KiB

/**
 * When libp2p stops referencing bytes that were sent on a stream.
 *
 * Why: a yamux stream hands its bytes to the connection's Noise stream as
 * views, and Noise keeps them, unencrypted, in its write queue while the socket
 * is full; only encryption copies them. A sender that reuses a chunk buffer
 * once `write` resolves would change bytes still waiting there (see the
 * stream-io tests). Copying every chunk instead cost the sender about 0.8 ms of
 * CPU per MiB (allocation, zero fill and the GC of the copies).
 *
 * One ledger per connection: the muxer factory (yamux-guard.ts) counts the
 * bytes the muxer appends to the encrypted stream. That stream's queue is FIFO,
 * so the bytes it has let go of are `appended − writeBufferLength`; a write is
 * released once that count reaches the total appended after its last byte.
 * Re-checked on the encrypted stream's 'drain' (after its queue ran) and
 * 'idle'; its 'close' releases everything (the queue is dropped).
 *
 * Below Noise, the TCP connection (its `Wire`, when there is one) says how much of that has
 * reached the kernel, which is how a stream waiting for window on a slow link knows its bytes
 * are still on their way (`flight`) and how the node knows a connection is alive
 * (connection-liveness.ts).
 */
export class ConnectionSendLedger {
  /** Set once the muxer exists (the count must start before it sends anything). */
  muxer: StreamMuxer | undefined
  readonly #transport: MessageStream
  /** The TCP connection below, or undefined (through a relay). */
  readonly wire: Wire | undefined
  #appended = 0
  #closed = false
  /** Releases waiting for the queue to pass their mark, in mark order (at most one per stream write). */
  readonly #waiting: Array<{ mark: number; release: () => void }> = []
  #head = 0

  constructor(transport: MessageStream) {
    this.#transport = transport
    this.wire = wireOf(transport)
    // 'drain' runs before the stream's own queue processing (queued as a microtask by an earlier
    // listener): check after it.
    transport.addEventListener('drain', () => queueMicrotask(() => this.#check()))
    transport.addEventListener('idle', () => this.#check())
    transport.addEventListener('close', () => {
      this.#closed = true
      this.#check()
    })
  }

  /** Called by the muxer factory for every byte array the muxer sends on the connection. */
  noteAppended(bytes: number): void {
    this.#appended += bytes
  }

  /** Bytes the encrypted stream has taken out of its queue (encrypted, or dropped on close). */
  get consumed(): number {
    return this.#closed ? this.#appended : this.#appended - this.#transport.writeBufferLength
  }

  /**
   * Bytes appended that have reached the kernel (everything once closed). Counted in plaintext
   * against what the TCP connection holds in ciphertext, so it lags by Noise's 18 bytes a message
   * of what waits there, never leads; without a wire, what left Noise's queue.
   */
  get delivered(): number {
    return this.consumed - (this.#closed ? 0 : (this.wire?.unsent ?? 0))
  }

  /**
   * Bytes appended that the peer's kernel has acknowledged, as `delivered` counts them, or
   * undefined where the kernel's queue cannot be read (kernel-queue.ts; through a relay).
   */
  get acked(): number | undefined {
    if (this.#closed) return this.#appended
    const unacked = this.wire?.unacked
    return unacked === undefined ? undefined : this.delivered - unacked
  }

  /** A flight of every byte appended so far (see Flight). */
  flight(): Flight {
    return new Flight(this, this.#appended)
  }

  /** Ends the connection with `err` (its muxer and every stream on it). */
  abort(err: Error): void {
    this.#transport.abort(err)
  }

  /** Calls `release` once every byte appended so far has left the encrypted stream's queue. */
  afterQueued(release: () => void): void {
    const mark = this.#appended
    if (this.consumed >= mark) {
      release()
      return
    }
    this.#waiting.push({ mark, release })
  }

  #check(): void {
    const consumed = this.consumed
    while (this.#head < this.#waiting.length && this.#waiting[this.#head]!.mark <= consumed) {
      const { release } = this.#waiting[this.#head]!
      this.#waiting[this.#head++] = undefined as never
      release()
    }
    if (this.#head > 64 && this.#head * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#head)
      this.#head = 0
    }
  }
}

/**
 * The bytes a connection had been given up to one moment, on their way to the peer: a stream
 * whose write waits for the peer's window asks whether its own are still moving. A yamux data
 * frame is as large as the window and the peer grants more only once a whole frame has arrived,
 * so on a slow link the stream itself sends nothing for the time a window takes (256 KiB: 8 s at
 * 256 kbit/s; 1 MiB: 33 s) while the link is busy with its bytes.
 *
 * Two stages: into the kernel (`delivered`, cheap), then, asked with `deep`, acknowledged by the
 * peer's kernel (`acked`, a read of the kernel's tables, kernel-queue.ts), since the kernel's
 * send buffer holds seconds of a slow link's bytes.
 */
export class Flight {
  readonly #ledger: ConnectionSendLedger
  readonly #end: number
  #mark: number
  #inKernel = false
  #ackMark: number | undefined
  #landed = false

  constructor(ledger: ConnectionSendLedger, end: number) {
    this.#ledger = ledger
    this.#end = end
    this.#mark = ledger.delivered
  }

  /** True once the peer acknowledged every byte of the flight, or that cannot be known. */
  get landed(): boolean {
    return this.#landed
  }

  /**
   * True each time another FLIGHT_PROGRESS_BYTES of the connection's queue, or the last byte of
   * the flight, reached the kernel since the last true; with `deep`, also each time the peer
   * acknowledged another FLIGHT_PROGRESS_BYTES, or the last byte (the first deep call takes its
   * mark). The kernel takes bytes in bursts (at 64 kbit/s it took none for over 10 s at a time,
   * measured as the sender's stall bound firing), the peer acknowledges them as the link carries
   * them. False for good once the peer has acknowledged them all, or, once they are all in the
   * kernel, when that cannot be known.
   */
  moved(deep = false): boolean {
    if (this.#landed) return false
    const ledger = this.#ledger
    if (!this.#inKernel) {
      const delivered = ledger.delivered
      if (delivered >= this.#end) {
        this.#inKernel = true
        return true
      }
      if (delivered - this.#mark >= FLIGHT_PROGRESS_BYTES) {
        this.#mark = delivered
        return true
      }
    }
    if (!deep) return false
    const acked = ledger.acked
    if (acked === undefined) {
      this.#landed = this.#inKernel
      return false
    }
    if (acked >= this.#end) {
      this.#landed = true
      return true
    }
    if (this.#ackMark === undefined || acked - this.#ackMark < FLIGHT_PROGRESS_BYTES) {
      this.#ackMark ??= acked
      return false
    }
    this.#ackMark = acked
    return true
  }
}

/** The ledgers of one libp2p node's open connections; finds the one a stream belongs to. */
export class SendLedgers {
  readonly #open = new Set<ConnectionSendLedger>()

  /**
   * Wraps `transport.send` so the ledger counts what the muxer appends. Call before the muxer
   * is created, then set `ledger.muxer`.
   */
  track(transport: MessageStream): ConnectionSendLedger {
    const ledger = new ConnectionSendLedger(transport)
    const send = transport.send.bind(transport)
    transport.send = (data) => {
      ledger.noteAppended(data.byteLength)
      return send(data)
    }
    this.#open.add(ledger)
    transport.addEventListener('close', () => this.#open.delete(ledger))
    return ledger
  }

  /** The open connections' ledgers. */
  open(): Iterable<ConnectionSendLedger> {
    return this.#open
  }

  /**
   * The ledger of the connection `stream` is multiplexed on, or undefined (not a tracked
   * connection). Asked once per stream, when it is wrapped: a scan of the open connections.
   */
  of(stream: Stream): ConnectionSendLedger | undefined {
    for (const ledger of this.#open) if (ledger.muxer?.streams.includes(stream) === true) return ledger
    return undefined
  }
}
