import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { AbortedError, InvalidArgumentError, PeerUnreachableError } from '../errors.ts'
import { circuitBytesLeft } from './circuits.ts'
import { type AdmissionStats, ConnectionAdmission } from './connection-admission.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { startLibp2p } from './node.ts'
import { type NetworkOnlyOptions, type NetworkOptions, resolveNetworkOptions } from './options.ts'
import { describeDialError, otherIdentity, parseAddrs, parsePeer, raceSignal } from './peer-addr.ts'
import { PeerConnections } from './peer-connections.ts'
import { type PeerState, PeerStreams } from './peer-streams.ts'
import { type RelayChange, RelayKeeper } from './relay-keeper.ts'
import { startOnStablePort } from './stable-port.ts'
import { type Refusal, StreamHandlers } from './stream-handlers.ts'
import { type FrameStream, verifyIdleTimeout, wrapStream } from './stream-io.ts'
import { StreamOpener } from './stream-open.ts'
import { SendLedgers } from './tuning/send-ledger.ts'

export type { NetworkOptions } from './options.ts'
export type { Refusal } from './stream-handlers.ts'

/**
 * The network actor: owns the libp2p node, keeps one connection per peer,
 * bounds streams per peer in both directions, and hands out FrameStreams.
 * Nothing above this class touches libp2p. Its parts: peer-streams.ts (per-peer
 * stream bookkeeping), peer-connections.ts (which connection, dialing),
 * stream-open.ts (opening a stream on a connection) and stream-handlers.ts
 * (the protocols served, inbound limits and refusals).
 */
export class Network {
  readonly #node: Libp2p
  /** Tells when libp2p is done with sent bytes, so senders may reuse their buffers (send-ledger.ts). */
  readonly #ledgers: SendLedgers
  readonly #o: Required<NetworkOnlyOptions> & { connectTimeoutMs: number }
  readonly #admission: ConnectionAdmission
  readonly #stop = new AbortController()
  #stopped: Promise<void> | undefined
  readonly #peers: PeerStreams
  readonly #connections: PeerConnections
  readonly #opener: StreamOpener
  readonly #handlers: StreamHandlers
  readonly #relays: RelayKeeper
  readonly #relayWatchers = new Set<(c: RelayChange) => void>()
  #streamsOpened = 0

  private constructor(
    node: Libp2p,
    ledgers: SendLedgers,
    o: Required<NetworkOnlyOptions> & { connectTimeoutMs: number },
    admission: ConnectionAdmission,
    relays: readonly string[],
  ) {
    this.#node = node
    this.#ledgers = ledgers
    this.#o = o
    this.#admission = admission
    const stop = this.#stop.signal
    this.#peers = new PeerStreams(o.maxStreamsPerPeer, o.maxQueuedOpensPerPeer)
    this.#connections = new PeerConnections(node, o.connectTimeoutMs, stop)
    this.#opener = new StreamOpener(stop, o.connectTimeoutMs, o.maxStreamsPerPeer)
    this.#handlers = new StreamHandlers(node, ledgers, o, this.#peers, this.#opener, stop)
    this.#relays = new RelayKeeper(node, relays, (c) => {
      for (const watch of this.#relayWatchers) watch(c)
    })
  }

  static async create(opts: NetworkOptions = {}): Promise<Network> {
    const { net, node } = resolveNetworkOptions(opts)
    const key = node.dataDir === undefined ? undefined : await loadOrCreateIdentity(node.dataDir)
    const ledgers = new SendLedgers()
    const admission = new ConnectionAdmission(node.admission, node.maxConnections)
    const libp2p = await startOnStablePort(node, (o) => startLibp2p(o, key, {}, ledgers, admission))
    return new Network(
      libp2p,
      ledgers,
      { ...net, connectTimeoutMs: node.connectTimeoutMs },
      admission,
      node.relays,
    )
  }

  /**
   * Calls `watch` when a slot on a configured relay is lost (the relay restarted, the link went
   * down), each time reserving it again fails, and when it is held again (see RelayKeeper).
   * Returns the unsubscribe.
   */
  onRelayChange(watch: (c: RelayChange) => void): () => void {
    this.#relayWatchers.add(watch)
    return () => this.#relayWatchers.delete(watch)
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
    const state = this.#peers.of(key)
    try {
      await state.slots.acquire({ signal, what: `streams to peer ${key}` })
    } catch (err) {
      this.#peers.forgetIfIdle(key)
      throw err
    }
    let handedOut = false
    try {
      const connect = (): Promise<Connection> => this.#connect(state, peerId, dialAddrs, signal)
      const { stream: raw, conn } = await this.#opener.open(peerId, protocol, connect, signal)
      const fs = wrapStream(raw, {
        remotePeer: key,
        circuitBytesLeft: () => circuitBytesLeft(conn),
        sendLedger: this.#ledgers.of(raw),
        idleTimeoutMs: opts.idleTimeoutMs ?? this.#o.idleTimeoutMs,
        maxBufferedIncoming: this.#o.maxBufferedIncoming,
        onClose: () => {
          state.outbound.delete(fs)
          state.slots.release()
          this.#peers.forgetIfIdle(key)
        },
      })
      handedOut = true
      this.#streamsOpened++
      state.outbound.add(fs)
      return fs
    } finally {
      if (!handedOut) {
        state.slots.release()
        this.#peers.forgetIfIdle(key)
      }
    }
  }

  /**
   * Serves `protocol`. Each inbound stream is passed to `handler`, which owns
   * it (should close or abort it); a handler that throws aborts the stream with
   * its error. A stream beyond maxInboundStreamsPerPeer, or beyond maxInboundStreams of all
   * peers together, goes to `opts.refuse` (which should tell the peer to retry later and close
   * it), or is reset unseen without one.
   */
  async handle(
    protocol: string,
    handler: (stream: FrameStream) => void | Promise<void>,
    opts: { idleTimeoutMs?: number; refuse?: Refusal } = {},
  ): Promise<void> {
    this.#assertRunning()
    await this.#handlers.register(protocol, handler, opts)
  }

  /** Streams this network handed out (both directions) that are not finished yet. */
  openStreamCount(peer?: string): number {
    return this.#peers.openCount(peer)
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
      const why = describeDialError(err)
      const other = otherIdentity(why)
      throw other === undefined
        ? new PeerUnreachableError(`cannot reach ${addr}: ${why}`, { cause: err })
        : new PeerUnreachableError(
            `another peer (${other}) answers at ${addr} now: the one it names restarted without its data folder (a new identity) or left; use its new address`,
            { cause: err },
            other,
          )
    }
  }

  /**
   * Ciphertext handed to the TCP connections that the kernel has not taken yet, all connections
   * together: outside the memory budget, at most NOISE_SEND_BATCH_BYTES and a socket's high-water
   * mark per connection (noise-stream.ts).
   */
  socketQueuedBytes(): number {
    let n = 0
    for (const ledger of this.#ledgers.open()) n += ledger.wire?.unsent ?? 0
    return n
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
    this.#relays.stop()
    this.#peers.abortAll(err)
    await this.#node.stop()
  }

  #assertRunning(): void {
    if (this.#stop.signal.aborted) throw new AbortedError('the network was stopped')
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
        this.#peers.forgetIfIdle(peerId.toString())
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
