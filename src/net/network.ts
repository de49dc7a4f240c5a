import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import {
  AbortedError,
  InternalError,
  InvalidArgumentError,
  isHaulError,
  PeerUnreachableError,
  StreamClosedError,
  TimeoutError,
  TooManyRequestsError,
  UnsupportedVersionError,
} from '../errors.ts'
import { Slots } from '../util/slots.ts'
import { circuitBytesLeft } from './circuits.ts'
import { type AdmissionStats, ConnectionAdmission } from './connection-admission.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { startLibp2p } from './node.ts'
import { type NetworkOnlyOptions, type NetworkOptions, resolveNetworkOptions } from './options.ts'
import { describeDialError, parseAddrs, parsePeer, raceSignal } from './peer-addr.ts'
import { PeerConnections } from './peer-connections.ts'
import { startOnStablePort } from './stable-port.ts'
import { type FrameStream, verifyIdleTimeout, wrapStream } from './stream-io.ts'
import { SendLedgers } from './tuning/send-ledger.ts'

export type { NetworkOptions } from './options.ts'

/** Tries of one stream open across connections that go away under it. */
const OPEN_ATTEMPTS = 3

/** libp2p errors of a connection that can carry no new stream: closing, closed, or its muxer aborted. */
const CONNECTION_GONE = new Set(['ConnectionClosedError', 'ConnectionClosingError', 'MuxerClosedError'])
/** libp2p errors of a stream cut while it was being opened (a connection going away, a peer refusing). */
const OPEN_CUT = new Set(['StreamResetError', 'StreamAbortedError', 'StreamStateError'])

/** Streams over the inbound limit that one peer may have in refusal at once; more are reset unseen. */
const MAX_REFUSING_PER_PEER = 8

/** How a handler turns away a stream over the peer's inbound limit (e.g. with a protocol error). */
export type Refusal = (stream: FrameStream, reason: TooManyRequestsError) => void | Promise<void>

interface Handler {
  readonly serve: (stream: FrameStream) => void | Promise<void>
  readonly refuse: Refusal | undefined
  readonly idleTimeoutMs: number
}

interface PeerState {
  readonly slots: Slots
  readonly outbound: Set<FrameStream>
  readonly inbound: Set<FrameStream>
  /** Streams over the inbound limit being turned away. */
  refusing: number
  dialing: Promise<Connection> | undefined
}

/**
 * The network actor: owns the libp2p node, keeps one connection per peer,
 * bounds streams per peer in both directions, and hands out FrameStreams.
 * Nothing above this class touches libp2p.
 */
export class Network {
  readonly #node: Libp2p
  /** Tells when libp2p is done with sent bytes, so senders may reuse their buffers (send-ledger.ts). */
  readonly #ledgers: SendLedgers
  readonly #o: Required<NetworkOnlyOptions> & { connectTimeoutMs: number }
  readonly #admission: ConnectionAdmission
  readonly #peers = new Map<string, PeerState>()
  readonly #stop = new AbortController()
  #stopped: Promise<void> | undefined
  /** Connections on which a stream was negotiated or accepted: the peer's side of them is set up. */
  readonly #ready = new WeakSet<Connection>()
  /** Per connection not proven yet, the one open in flight on it; other opens wait for it. */
  readonly #proving = new WeakMap<Connection, Promise<void>>()
  readonly #connections: PeerConnections
  #streamsOpened = 0

  private constructor(
    node: Libp2p,
    ledgers: SendLedgers,
    o: Required<NetworkOnlyOptions> & { connectTimeoutMs: number },
    admission: ConnectionAdmission,
  ) {
    this.#node = node
    this.#ledgers = ledgers
    this.#o = o
    this.#admission = admission
    this.#connections = new PeerConnections(node, o.connectTimeoutMs, this.#stop.signal)
  }

  static async create(opts: NetworkOptions = {}): Promise<Network> {
    const { net, node } = resolveNetworkOptions(opts)
    const key = node.dataDir === undefined ? undefined : await loadOrCreateIdentity(node.dataDir)
    const ledgers = new SendLedgers()
    const admission = new ConnectionAdmission(node.admission, node.maxConnections)
    const libp2p = await startOnStablePort(node, (o) => startLibp2p(o, key, {}, ledgers, admission))
    return new Network(libp2p, ledgers, { ...net, connectTimeoutMs: node.connectTimeoutMs }, admission)
  }

  get peerId(): string {
    return this.#node.peerId.toString()
  }

  /** Dialable multiaddrs, each ending in /p2p/<our peer id>. */
  get addresses(): string[] {
    return this.#node.getMultiaddrs().map((ma) => ma.toString())
  }

  /**
   * Opens a stream to `peer` on `protocol`, reusing the open connection or
   * dialing `addrs` (bounded by connectTimeoutMs). Waits for a free per-peer
   * slot; the slot is returned when the stream is finished.
   */
  async openStream(
    peer: string,
    addrs: readonly string[],
    protocol: string,
    opts: { signal?: AbortSignal; idleTimeoutMs?: number } = {},
  ): Promise<FrameStream> {
    const { signal } = opts
    if (signal?.aborted) throw new AbortedError()
    this.#assertRunning()
    const peerId = parsePeer(peer)
    if (peerId.equals(this.#node.peerId)) throw new InvalidArgumentError('cannot open a stream to ourselves')
    const dialAddrs = parseAddrs(peerId, addrs)
    if (opts.idleTimeoutMs !== undefined) verifyIdleTimeout(opts.idleTimeoutMs)
    const key = peerId.toString()
    const state = this.#state(key)
    try {
      await state.slots.acquire({ signal, what: `streams to peer ${key}` })
    } catch (err) {
      this.#maybeForget(key)
      throw err
    }
    let handedOut = false
    try {
      const { stream: raw, conn } = await this.#newStream(state, peerId, dialAddrs, protocol, signal)
      const fs = wrapStream(raw, {
        remotePeer: key,
        circuitBytesLeft: () => circuitBytesLeft(conn),
        sendLedger: this.#ledgers.of(raw),
        idleTimeoutMs: opts.idleTimeoutMs ?? this.#o.idleTimeoutMs,
        maxBufferedIncoming: this.#o.maxBufferedIncoming,
        onClose: () => {
          state.outbound.delete(fs)
          state.slots.release()
          this.#maybeForget(key)
        },
      })
      handedOut = true
      this.#streamsOpened++
      state.outbound.add(fs)
      return fs
    } finally {
      if (!handedOut) {
        state.slots.release()
        this.#maybeForget(key)
      }
    }
  }

  /**
   * Serves `protocol`. Each inbound stream is passed to `handler`, which owns
   * it (should close or abort it); a handler that throws aborts the stream with
   * its error. A stream beyond maxInboundStreamsPerPeer goes to `opts.refuse` (which should
   * tell the peer to retry later and close it), or is reset unseen without one.
   */
  async handle(
    protocol: string,
    handler: (stream: FrameStream) => void | Promise<void>,
    opts: { idleTimeoutMs?: number; refuse?: Refusal } = {},
  ): Promise<void> {
    this.#assertRunning()
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

  /** Streams this network handed out (both directions) that are not finished yet. */
  openStreamCount(peer?: string): number {
    if (peer !== undefined) {
      const s = this.#peers.get(peer)
      return s === undefined ? 0 : s.outbound.size + s.inbound.size
    }
    let n = 0
    for (const s of this.#peers.values()) n += s.outbound.size + s.inbound.size
    return n
  }

  /** Streams `openStream` handed out since start. */
  get streamsOpened(): number {
    return this.#streamsOpened
  }

  /** The node's Kademlia DHT (src/routing/); undefined unless the network was created with `dht`. */
  get dht(): KadDHT | undefined {
    return (this.#node.services as { dht?: KadDHT }).dht
  }

  /**
   * Connects to the peer `addr` names (it ends in /p2p/<peer id>) without opening a stream: the
   * DHT's bootstrap. Fails with PEER_UNREACHABLE after `connectTimeoutMs`.
   */
  async connect(addr: string, signal?: AbortSignal): Promise<void> {
    this.#assertRunning()
    let ma: Multiaddr
    try {
      ma = multiaddr(addr)
    } catch (err) {
      throw new InvalidArgumentError(`not a multiaddr: ${JSON.stringify(addr)}`, { cause: err })
    }
    const timeout = AbortSignal.timeout(this.#o.connectTimeoutMs)
    const signals = [timeout, this.#stop.signal, ...(signal === undefined ? [] : [signal])]
    try {
      await this.#node.dial(ma, { signal: AbortSignal.any(signals) })
    } catch (err) {
      if (signal?.aborted) throw new AbortedError()
      throw new PeerUnreachableError(`cannot reach ${addr}: ${describeDialError(err)}`, { cause: err })
    }
  }

  /** Open libp2p connections (to one peer or all); for tests and diagnostics. */
  connectionCount(peer?: string): number {
    const conns =
      peer === undefined ? this.#node.getConnections() : this.#node.getConnections(parsePeer(peer))
    return conns.filter((c) => c.status === 'open').length
  }

  /** Inbound sockets in their handshake, and those refused or evicted so far (connection-admission.ts). */
  admissionStats(): AdmissionStats {
    return this.#admission.stats
  }

  /** Aborts every stream and waiting call, closes all connections and the listener. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#doStop()
    return this.#stopped
  }

  async #doStop(): Promise<void> {
    const err = new AbortedError('the network was stopped')
    this.#stop.abort(err)
    for (const s of this.#peers.values()) {
      s.slots.rejectWaiters(err)
      for (const fs of [...s.outbound, ...s.inbound]) fs.abort(err)
    }
    await this.#node.stop()
  }

  #assertRunning(): void {
    if (this.#stop.signal.aborted) throw new AbortedError('the network was stopped')
  }

  #state(key: string): PeerState {
    let s = this.#peers.get(key)
    if (s === undefined) {
      s = {
        slots: new Slots(this.#o.maxStreamsPerPeer, this.#o.maxQueuedOpensPerPeer),
        outbound: new Set(),
        inbound: new Set(),
        refusing: 0,
        dialing: undefined,
      }
      this.#peers.set(key, s)
    }
    return s
  }

  /** Peer bookkeeping is dropped when unused so the map does not grow with every peer ever seen. */
  #maybeForget(key: string): void {
    const s = this.#peers.get(key)
    if (s === undefined) return
    const busy = s.inbound.size > 0 || s.outbound.size > 0 || s.refusing > 0 || s.dialing !== undefined
    if (s.slots.idle && !busy) {
      this.#peers.delete(key)
    }
  }

  #accept(raw: Stream, connection: Connection, handler: Handler): void {
    const key = connection.remotePeer.toString()
    // The peer opened this stream through its connection object, so its side is set up.
    this.#ready.add(connection)
    if (this.#stop.signal.aborted) {
      raw.abort(new AbortedError('the network was stopped'))
      return
    }
    const state = this.#state(key)
    const { idleTimeoutMs } = handler
    if (state.inbound.size >= this.#o.maxInboundStreamsPerPeer) {
      this.#refuse(raw, key, state, handler)
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
        state.inbound.delete(fs)
        this.#maybeForget(key)
      },
    })
    state.inbound.add(fs)
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
   * A stream over the peer's inbound limit: the handler's refusal (a retryable protocol error the
   * peer can read) if it has one and few refusals are under way, a plain reset otherwise. A peer
   * running haul's defaults never gets here: its outbound limit per peer equals our inbound one.
   */
  #refuse(raw: Stream, key: string, state: PeerState, handler: Handler): void {
    const reason = new TooManyRequestsError(
      `peer ${key} already has ${state.inbound.size} streams open here (maxInboundStreamsPerPeer): retry later`,
    )
    if (handler.refuse === undefined || state.refusing >= MAX_REFUSING_PER_PEER) {
      raw.abort(reason)
      this.#maybeForget(key)
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
        this.#maybeForget(key)
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

  /**
   * Opens a raw stream, on the peer's canonical connection or a new one. The open is retried on
   * another connection when the one it tried was going away (closed by the peer, a duplicate being
   * closed, a muxer that was aborted): nothing has been sent yet, so the caller never sees that
   * churn. A connection whose muxer refuses streams while its socket stays open is aborted here, so
   * the next open dials afresh instead of failing on it forever.
   */
  async #newStream(
    state: PeerState,
    peerId: PeerId,
    addrs: Multiaddr[],
    protocol: string,
    signal: AbortSignal | undefined,
  ): Promise<{ stream: Stream; conn: Connection }> {
    for (let failures = 0; ; ) {
      const conn = await this.#connect(state, peerId, addrs, signal)
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
          maxOutboundStreams: this.#o.maxStreamsPerPeer * 2 + 8,
          runOnLimitedConnection: true,
        })
        this.#ready.add(conn)
        return { stream, conn }
      } catch (err) {
        if (signal?.aborted) throw new AbortedError()
        this.#assertRunning()
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
            `peer ${peerId} did not accept a ${protocol} stream within ${this.#o.connectTimeoutMs} ms`,
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
    const parts = [this.#stop.signal, AbortSignal.timeout(this.#o.connectTimeoutMs)]
    if (signal !== undefined) parts.push(signal)
    return AbortSignal.any(parts)
  }

  async #connect(
    state: PeerState,
    peerId: PeerId,
    addrs: Multiaddr[],
    signal?: AbortSignal,
  ): Promise<Connection> {
    const open = this.#connections.canonical(peerId)
    if (open !== undefined) return open
    // Concurrent opens share one dial; each caller still honours its own signal.
    if (state.dialing === undefined) {
      const dialing = this.#connections.dial(peerId, addrs).finally(() => {
        if (state.dialing === dialing) state.dialing = undefined
        this.#maybeForget(peerId.toString())
      })
      state.dialing = dialing
      dialing.catch(() => {})
    }
    return await raceSignal(state.dialing, signal)
  }

  /** How this node reaches `peer` now: 'relayed' through a circuit relay, 'direct', or undefined when not connected. */
  pathTo(peer: string): 'direct' | 'relayed' | undefined {
    return this.#connections.pathTo(parsePeer(peer))
  }

  /**
   * Closes this node's data-limited circuits to `peer`: one that cannot carry the next chunk
   * (CIRCUIT_LIMIT) would otherwise be reused by the retry, and the next stream dials a new one.
   */
  dropSpentCircuits(peer: string): void {
    this.#connections.dropSpentCircuits(parsePeer(peer))
  }
}
