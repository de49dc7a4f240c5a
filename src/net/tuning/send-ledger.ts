import type { MessageStream, Stream, StreamMuxer } from '@libp2p/interface'

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
 */
export class ConnectionSendLedger {
  /** Set once the muxer exists (the count must start before it sends anything). */
  muxer: StreamMuxer | undefined
  readonly #transport: MessageStream
  #appended = 0
  #closed = false
  /** Releases waiting for the queue to pass their mark, in mark order (at most one per stream write). */
  readonly #waiting: Array<{ mark: number; release: () => void }> = []
  #head = 0

  constructor(transport: MessageStream) {
    this.#transport = transport
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

  /**
   * The ledger of the connection `stream` is multiplexed on, or undefined (not a tracked
   * connection). Asked once per stream, when it is wrapped: a scan of the open connections.
   */
  of(stream: Stream): ConnectionSendLedger | undefined {
    for (const ledger of this.#open) if (ledger.muxer?.streams.includes(stream) === true) return ledger
    return undefined
  }
}
