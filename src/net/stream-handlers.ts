import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import {
  AbortedError,
  InternalError,
  InvalidArgumentError,
  isHaulError,
  TooManyRequestsError,
} from '../errors.ts'
import { circuitBytesLeft } from './circuits.ts'
import type { NetworkOnlyOptions } from './options.ts'
import type { PeerState, PeerStreams } from './peer-streams.ts'
import { type FrameStream, verifyIdleTimeout, wrapStream } from './stream-io.ts'
import type { StreamOpener } from './stream-open.ts'
import type { SendLedgers } from './tuning/send-ledger.ts'

/** Streams over the inbound limit that one peer may have in refusal at once; more are reset unseen. */
const MAX_REFUSING_PER_PEER = 8

/** How a handler turns away a stream over the peer's inbound limit (e.g. with a protocol error). */
export type Refusal = (stream: FrameStream, reason: TooManyRequestsError) => void | Promise<void>

interface Handler {
  readonly serve: (stream: FrameStream) => void | Promise<void>
  readonly refuse: Refusal | undefined
  readonly idleTimeoutMs: number
}

/**
 * The inbound side of the network actor (./network.ts): the protocols it serves, registered on
 * the libp2p node, and what becomes of each stream a peer opens on one. A stream within the
 * peer's inbound limit and the node's goes to its handler as a FrameStream, counted in the
 * peer's entry and the node's total; one beyond either is turned away by the handler's refusal
 * or a reset. libp2p's own stream limits are per connection and per protocol, so the per-peer
 * and node-wide bounds live here.
 */
export class StreamHandlers {
  readonly #node: Libp2p
  readonly #ledgers: SendLedgers
  readonly #o: Required<NetworkOnlyOptions>
  readonly #peers: PeerStreams
  readonly #opener: StreamOpener
  /** The network's stop. */
  readonly #stop: AbortSignal
  /** Inbound streams handed to handlers and not closed yet, all peers together. */
  #inbound = 0

  constructor(
    node: Libp2p,
    ledgers: SendLedgers,
    o: Required<NetworkOnlyOptions>,
    peers: PeerStreams,
    opener: StreamOpener,
    stop: AbortSignal,
  ) {
    this.#node = node
    this.#ledgers = ledgers
    this.#o = o
    this.#peers = peers
    this.#opener = opener
    this.#stop = stop
  }

  /** Registers `handler` for `protocol` (see Network.handle). */
  async register(
    protocol: string,
    handler: (stream: FrameStream) => void | Promise<void>,
    opts: { idleTimeoutMs?: number; refuse?: Refusal },
  ): Promise<void> {
    if (typeof protocol !== 'string' || !protocol.startsWith('/')) {
      throw new InvalidArgumentError(`protocol id must start with '/': ${JSON.stringify(protocol)}`)
    }
    const idleTimeoutMs = opts.idleTimeoutMs ?? this.#o.idleTimeoutMs
    verifyIdleTimeout(idleTimeoutMs)
    const h: Handler = { serve: handler, refuse: opts.refuse, idleTimeoutMs }
    // libp2p counts per connection and per protocol; ours is per peer. Its limits
    // are only a backstop, set above ours so they never fire first.
    const backstop = Math.max(this.#o.maxStreamsPerPeer, this.#o.maxInboundStreamsPerPeer) * 2 + 8
    try {
      await this.#node.handle(
        protocol,
        (raw: Stream, connection: Connection) => {
          this.#accept(raw, connection, h)
        },
        // A relay that limits its circuits marks relayed connections limited; a transfer still
        // starts on one (and moves to a direct connection when a hole punch makes one).
        { maxInboundStreams: backstop, maxOutboundStreams: backstop, runOnLimitedConnection: true },
      )
    } catch (err) {
      if ((err as Error).name === 'DuplicateProtocolHandlerError') {
        throw new InvalidArgumentError(`a handler for ${protocol} is already registered`, { cause: err })
      }
      throw err
    }
  }

  #accept(raw: Stream, connection: Connection, handler: Handler): void {
    const key = connection.remotePeer.toString()
    // The peer opened this stream through its connection object, so its side is set up.
    this.#opener.proven(connection)
    if (this.#stop.aborted) {
      raw.abort(new AbortedError('the network was stopped'))
      return
    }
    const state = this.#peers.of(key)
    const { idleTimeoutMs } = handler
    const full =
      state.inbound.size >= this.#o.maxInboundStreamsPerPeer
        ? `peer ${key} already has ${state.inbound.size} streams open here (maxInboundStreamsPerPeer)`
        : this.#inbound >= this.#o.maxInboundStreams
          ? `this node already has ${this.#inbound} streams open from its peers (maxInboundStreams)`
          : undefined
    if (full !== undefined) {
      this.#refuse(raw, key, state, handler, `${full}: retry later`)
      return
    }
    const fs = wrapStream(raw, {
      remotePeer: key,
      remoteAddr: connection.remoteAddr.toString(),
      circuitBytesLeft: () => circuitBytesLeft(connection),
      sendLedger: this.#ledgers.of(raw),
      idleTimeoutMs,
      maxBufferedIncoming: this.#o.maxBufferedIncoming,
      onClose: () => {
        if (state.inbound.delete(fs)) this.#inbound--
        this.#peers.forgetIfIdle(key)
      },
    })
    state.inbound.add(fs)
    this.#inbound++
    // Not awaited by libp2p: a long-running handler must not hold its middleware chain.
    void (async () => {
      try {
        await handler.serve(fs)
      } catch (err) {
        fs.abort(
          isHaulError(err)
            ? err
            : new InternalError(`stream handler failed: ${(err as Error)?.message}`, { cause: err }),
        )
      }
    })()
  }

  /**
   * A stream over the peer's inbound limit or the node's: the handler's refusal (a retryable protocol error the
   * peer can read) if it has one and few refusals are under way, a plain reset otherwise. A peer
   * running haul's defaults never gets here: its outbound limit per peer equals our inbound one.
   */
  #refuse(raw: Stream, key: string, state: PeerState, handler: Handler, why: string): void {
    const reason = new TooManyRequestsError(why)
    if (handler.refuse === undefined || state.refusing >= MAX_REFUSING_PER_PEER) {
      raw.abort(reason)
      this.#peers.forgetIfIdle(key)
      return
    }
    state.refusing++
    const fs = wrapStream(raw, {
      remotePeer: key,
      sendLedger: this.#ledgers.of(raw),
      idleTimeoutMs: handler.idleTimeoutMs,
      maxBufferedIncoming: this.#o.maxBufferedIncoming,
      onClose: () => {
        state.refusing--
        this.#peers.forgetIfIdle(key)
      },
    })
    void (async () => {
      try {
        await handler.refuse!(fs, reason)
      } catch {
        fs.abort(reason)
      }
    })()
  }
}
