import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { AbortedError, StreamClosedError, TimeoutError, UnsupportedVersionError } from '../errors.ts'
import { raceSignal } from './peer-addr.ts'

/** Tries of one stream open across connections that go away under it. */
const OPEN_ATTEMPTS = 3

/** libp2p errors of a connection that can carry no new stream: closing, closed, or its muxer aborted. */
const CONNECTION_GONE = new Set(['ConnectionClosedError', 'ConnectionClosingError', 'MuxerClosedError'])
/** libp2p errors of a stream cut while it was being opened (a connection going away, a peer refusing). */
const OPEN_CUT = new Set(['StreamResetError', 'StreamAbortedError', 'StreamStateError'])

/**
 * How the network actor (./network.ts) opens a raw libp2p stream on a peer's connection. It owns
 * what makes an open safe and what its failures mean: which connections are proven (the peer's
 * side of them is set up), one open at a time on a connection not proven yet, retries on another
 * connection when the one tried goes away, and the haul error each failure that remains becomes.
 * Which connection to use and the per-peer limits stay with the network.
 */
export class StreamOpener {
  /** The network's stop. */
  readonly #stop: AbortSignal
  readonly #connectTimeoutMs: number
  readonly #maxStreamsPerPeer: number
  /** Connections on which a stream was negotiated or accepted: the peer's side of them is set up. */
  readonly #ready = new WeakSet<Connection>()
  /** Per connection not proven yet, the one open in flight on it; other opens wait for it. */
  readonly #proving = new WeakMap<Connection, Promise<void>>()

  constructor(stop: AbortSignal, connectTimeoutMs: number, maxStreamsPerPeer: number) {
    this.#stop = stop
    this.#connectTimeoutMs = connectTimeoutMs
    this.#maxStreamsPerPeer = maxStreamsPerPeer
  }

  /** Marks `conn` proven: the peer opened a stream on it, so its side is set up. */
  proven(conn: Connection): void {
    this.#ready.add(conn)
  }

  /**
   * Opens a raw stream on the connection `connect` gives (the peer's canonical one or a new one).
   * The open is retried on another connection when the one it tried was going away (closed by the
   * peer, a duplicate being closed, a muxer that was aborted): nothing has been sent yet, so the
   * caller never sees that churn. A connection whose muxer refuses streams while its socket stays
   * open is aborted here, so the next open dials afresh instead of failing on it forever.
   */
  async open(
    peerId: PeerId,
    protocol: string,
    connect: () => Promise<Connection>,
    signal: AbortSignal | undefined,
  ): Promise<{ stream: Stream; conn: Connection }> {
    for (let failures = 0; ; ) {
      const conn = await connect()
      // Until one stream is negotiated on a connection, the peer may not have attached its stream
      // handler yet and keeps what arrives as "early streams", aborting the whole connection past
      // its limit (libp2p's default is 10). So opens on an unproven connection go one at a time.
      const proving = this.#proving.get(conn)
      if (proving !== undefined) {
        await raceSignal(proving, signal)
        continue
      }
      const proven = this.#ready.has(conn)
      const settle = proven ? undefined : Promise.withResolvers<void>()
      if (settle !== undefined) this.#proving.set(conn, settle.promise)
      const opSignal = this.#opSignal(signal)
      try {
        const stream = await conn.newStream(protocol, {
          signal: opSignal,
          maxOutboundStreams: this.#maxStreamsPerPeer * 2 + 8,
          runOnLimitedConnection: true,
        })
        this.#ready.add(conn)
        return { stream, conn }
      } catch (err) {
        if (signal?.aborted) throw new AbortedError()
        if (this.#stop.aborted) throw new AbortedError('the network was stopped')
        if ((err as Error).name === 'UnsupportedProtocolError') {
          throw new UnsupportedVersionError(
            `peer ${peerId} does not speak ${protocol}: upgrade the older side`,
            {
              cause: err,
            },
          )
        }
        if (opSignal.aborted) {
          throw new TimeoutError(
            `peer ${peerId} did not accept a ${protocol} stream within ${this.#connectTimeoutMs} ms`,
            { cause: err },
          )
        }
        const name = (err as Error).name
        const gone = conn.status !== 'open' || CONNECTION_GONE.has(name)
        // A socket still open under a muxer that refuses streams would fail every open from now on.
        if (gone && conn.status === 'open') conn.abort(err as Error)
        if ((gone || OPEN_CUT.has(name)) && ++failures < OPEN_ATTEMPTS) continue
        throw new StreamClosedError(
          `cannot open a ${protocol} stream to peer ${peerId}: ${(err as Error).message}`,
          {
            cause: err,
          },
        )
      } finally {
        if (settle !== undefined) {
          this.#proving.delete(conn)
          settle.resolve()
        }
      }
    }
  }

  /** Caller's signal + shutdown + connect timeout. */
  #opSignal(signal: AbortSignal | undefined): AbortSignal {
    const parts = [this.#stop, AbortSignal.timeout(this.#connectTimeoutMs)]
    if (signal !== undefined) parts.push(signal)
    return AbortSignal.any(parts)
  }
}
