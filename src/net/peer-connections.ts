import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { AbortedError, PeerUnreachableError, TooManyRequestsError } from '../errors.ts'
import { isRelayedAddress } from './addresses.ts'
import { circuitBytesLeft, isRelayed } from './circuits.ts'
import { describeDialError, otherIdentity } from './peer-addr.ts'

/**
 * The connections the network actor (./network.ts) opens streams on: which one of a peer's to
 * use, and how a peer not connected is dialed. Streams, their limits and their accounting stay
 * with the network; this knows connections only.
 */
/**
 * A relay refusing a circuit for lack of room: libp2p's RESOURCE_LIMIT_EXCEEDED, or
 * PERMISSION_DENIED, which a haul relay gives at its circuit limit (`haul relay --max-circuits`;
 * its allow-list refuses reservations, so a peer it does not allow has none to connect to).
 */
const RELAY_BUSY = /failed to connect via relay with status (RESOURCE_LIMIT_EXCEEDED|PERMISSION_DENIED)/

export class PeerConnections {
  readonly #node: Libp2p
  /** Each dial group's time, and how long a duplicate connection stays unused before it is closed. */
  readonly #timeoutMs: number
  /** The network's stop. */
  readonly #stop: AbortSignal
  /** Duplicate connections waiting to be closed once idle. */
  readonly #retiring = new WeakSet<Connection>()

  constructor(node: Libp2p, connectTimeoutMs: number, stop: AbortSignal) {
    this.#node = node
    this.#timeoutMs = connectTimeoutMs
    this.#stop = stop
  }

  /**
   * When both peers dial each other at once there are two connections. Both sides then prefer the
   * one dialed by the smaller peer id, so new streams converge on it. The other is closed once it
   * has carried no stream for `connectTimeoutMs`: by then both sides see both connections and
   * prefer the same one, so neither can be opening a stream on the duplicate as it closes.
   */
  canonical(peerId: PeerId): Connection | undefined {
    let open = this.#node.getConnections(peerId).filter((c) => c.status === 'open')
    // A direct connection (dialed, or made by a hole punch) wins over one through a relay.
    const direct = open.filter((c) => !isRelayed(c))
    if (direct.length > 0 && direct.length < open.length) {
      for (const c of open) if (isRelayed(c)) this.#retireWhenIdle(c)
      open = direct
    }
    if (open.length <= 1) return open[0]
    const weDialFirst = this.#node.peerId.toString() < peerId.toString()
    const preferred = open.find((c) => (c.direction === 'outbound') === weDialFirst) ?? open[0]!
    for (const c of open) if (c !== preferred) this.#retireWhenIdle(c)
    return preferred
  }

  #retireWhenIdle(conn: Connection): void {
    if (this.#retiring.has(conn)) return
    this.#retiring.add(conn)
    const check = (): void => {
      if (conn.status !== 'open' || this.#stop.aborted) return
      if (conn.streams.length === 0) void conn.close().catch(() => {})
      else setTimeout(check, this.#timeoutMs).unref()
    }
    setTimeout(check, this.#timeoutMs).unref()
  }

  /**
   * Dials the direct addresses first and, when none answers, the relayed ones: each group gets
   * `connectTimeoutMs`, so a ticket whose direct addresses are all out of reach (another
   * network's LAN) reaches the peer through its relay after at most one timeout. Within the
   * direct group the addresses are dialed one after another, in the ticket's order, each with an
   * equal share of what is left of the group's time (the last with all of it): an address that
   * swallows packets (a firewall dropping them, an interface the receiver cannot route to) costs
   * its share, not the whole timeout, before the next one is tried.
   */
  async dial(peerId: PeerId, addrs: Multiaddr[]): Promise<Connection> {
    if (addrs.length === 0) {
      throw new PeerUnreachableError(`peer ${peerId} is not connected and the ticket has no address to dial`)
    }
    const relayed = addrs.filter(isRelayedAddress)
    const direct = addrs.filter((a) => !isRelayedAddress(a))
    const why: string[] = []
    let lastError: unknown
    let relayBusy = false
    /** Dials `group` (one dial: libp2p joins concurrent dials of a peer) within `ms`; undefined on failure. */
    const attempt = async (group: Multiaddr[], ms: number): Promise<Connection | undefined> => {
      const timeout = AbortSignal.timeout(Math.max(1, Math.round(ms)))
      try {
        return await this.#node.dial(group, { signal: AbortSignal.any([this.#stop, timeout]) })
      } catch (err) {
        if (this.#stop.aborted) throw new AbortedError('the network was stopped')
        lastError = err
        const text = timeout.aborted ? `no answer within ${Math.round(ms)} ms` : describeDialError(err)
        why.push(group.length === 1 && direct.length > 1 ? `${group[0]}: ${text}` : text)
        if (group === relayed && RELAY_BUSY.test(text)) relayBusy = true
        return undefined
      }
    }
    const deadline = performance.now() + this.#timeoutMs
    for (let i = 0; i < direct.length; i++) {
      const left = deadline - performance.now()
      const conn = await attempt([direct[i]!], left / (direct.length - i))
      if (conn !== undefined) return conn
    }
    if (relayed.length > 0) {
      const conn = await attempt(relayed, this.#timeoutMs)
      if (conn !== undefined) return conn
    }
    if (relayBusy) {
      throw new TooManyRequestsError(
        `peer ${peerId} is reached only through its relay, and the relay has no circuit free for it now (${why.at(-1)}): a circuit frees up when another transfer through it ends (haul relay --max-circuits)`,
        { cause: lastError, relayFull: true },
      )
    }
    const others = why.map(otherIdentity)
    if (others.length > 0 && others.every((o) => o !== undefined)) {
      throw new PeerUnreachableError(
        `peer ${peerId} is no longer at ${addrs.map(String).join(', ')}: another peer (${others[0]}) answers there now. It restarted without its data folder (a new identity) or left: get a new ticket, or its new address`,
        { cause: lastError },
        others[0],
      )
    }
    throw new PeerUnreachableError(
      `cannot reach peer ${peerId} at ${addrs.map(String).join(', ')}: ${why.join('; ')}. Check that the sender still runs and that one of its addresses is reachable from here (a sender behind a NAT needs --relay)`,
      { cause: lastError },
    )
  }

  /** How this node reaches `peerId` now: 'relayed' through a circuit relay, 'direct', or undefined when not connected. */
  pathTo(peerId: PeerId): 'direct' | 'relayed' | undefined {
    const conn = this.canonical(peerId)
    if (conn === undefined) return undefined
    return isRelayed(conn) ? 'relayed' : 'direct'
  }

  /** Closes this node's data-limited circuits to `peerId` (see Network.dropSpentCircuits). */
  dropSpentCircuits(peerId: PeerId): void {
    for (const conn of this.#node.getConnections(peerId)) {
      if (isRelayed(conn) && circuitBytesLeft(conn) !== undefined) {
        conn.abort(new Error('the relay circuit has too few bytes left for the next chunk'))
      }
    }
  }
}
