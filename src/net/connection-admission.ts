import type { Connection, ConnectionGater, Libp2p, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { engineDefaults } from '../engine/config/resolve.ts'
import { addressKey } from './address-key.ts'

/**
 * Who may connect, and how many at once. libp2p alone lets ten silent sockets (its pending
 * limit) or `maxConnections` idle connections from anyone lock every newcomer out; these
 * limits make sure that neither one address nor one peer id can fill the node, and that an
 * authenticated newcomer finds room while any connection is idle.
 *
 * "Address" means the remote IPv4 address, or the /64 prefix of an IPv6 address (one host
 * usually holds a whole /64). Several haul processes on one host, and peers behind one NAT,
 * share an address: the per-address defaults leave room for dozens of them.
 *
 * Engine option `network.admission`; defaults and ranges: src/engine/config/table.ts.
 */
export interface AdmissionOptions {
  /**
   * How long an inbound socket may take, from TCP accept, to finish multistream-select, the
   * Noise handshake and muxer selection, in ms; then it is closed. A socket that says nothing
   * holds a pending slot this long. The handshake takes milliseconds on loopback and a LAN
   * and about three round trips on a WAN (1.8 s at 600 ms). Our own dials are bounded by
   * `connectTimeoutMs` instead.
   */
  upgradeTimeoutMs?: number
  /**
   * Inbound sockets in their handshake at once, from all addresses (libp2p's
   * `maxIncomingPendingConnections`, 10 by default there). With this many, a new socket closes
   * the oldest one past `pendingGraceMs` of an address holding more of them than its own, of the
   * one holding the most first, so that a few addresses cannot share out every slot between
   * them and lock everyone else out; if there is none, the new one is closed at accept.
   */
  maxPending?: number
  /**
   * Inbound sockets in their handshake at once from one address. One address holds at most
   * this share of `maxPending`. A new socket from an address at the cap closes that address's
   * oldest socket still in its handshake, if that one has waited at least `pendingGraceMs`
   * (a silent socket from the same host or NAT cannot lock a newcomer out); otherwise the new
   * one is closed at accept.
   */
  maxPendingPerAddress?: number
  /**
   * How long an inbound socket in its handshake is safe from being replaced by a newer one
   * (see `maxPendingPerAddress` and `maxPending`), in ms: a handshake takes milliseconds on
   * loopback and a LAN, so a newcomer finishes within it while silent sockets come and go.
   */
  pendingGraceMs?: number
  /**
   * Inbound connections from one address, counting those still in their handshake; more are
   * closed at accept. Connections we dial do not count. At least `maxPendingPerAddress`.
   */
  maxConnectionsPerAddress?: number
  /**
   * Connections with one peer id, both directions. One is the rule, two happen when both
   * peers dial at once, so at least 2. A new inbound connection from a peer at the cap
   * replaces its oldest idle connection, or is closed if all of them carry streams.
   */
  maxConnectionsPerPeer?: number
  /**
   * New inbound sockets accepted from one address per second; more are closed at accept
   * (libp2p's `inboundConnectionThreshold`, 5 by default there: too tight for several haul
   * processes on one host).
   */
  maxNewPerAddressPerSecond?: number
  /**
   * A connection younger than this is closed to make room only for a newcomer from an address
   * holding fewer inbound connections than the connection's own: it may not have opened its
   * first stream yet (a newcomer opens one within milliseconds of its handshake), and peers
   * that churn through the node's slots must not push out every newcomer as it arrives.
   */
  newConnectionGraceMs?: number
}

export const defaultAdmissionOptions: Required<AdmissionOptions> = engineDefaults.network.admission

/** Refusals and evictions since start; for tests and diagnostics. */
export interface AdmissionStats {
  /** Inbound sockets in their handshake now. */
  pending: number
  /** Inbound sockets now, in their handshake or upgraded. */
  inbound: number
  /** Sockets closed at accept: maxPending in their handshake, none to close from an address holding more. */
  refusedPending: number
  /** Sockets closed at accept: their address had maxPendingPerAddress in their handshake, none past pendingGraceMs. */
  refusedPendingPerAddress: number
  /** Sockets in their handshake closed to make room for a newer one from their address. */
  replacedPending: number
  /** Sockets in their handshake closed, maxPending being reached, for a newcomer from an address holding fewer. */
  displacedPending: number
  /** Sockets closed at accept: their address had maxConnectionsPerAddress. */
  refusedPerAddress: number
  /** Secured connections closed: their peer had maxConnectionsPerPeer, none idle. */
  refusedPerPeer: number
  /** Secured connections closed: the node had maxConnections, none idle. */
  refusedFull: number
  /** Idle connections closed to make room for a newcomer. */
  evicted: number
}

/** A stream that negotiated a protocol makes its connection busy; one still negotiating does not. */
function isIdle(c: Connection): boolean {
  return c.streams.every((s) => s.protocol === '')
}

/**
 * Counts inbound sockets per address and connections per peer, and turns away what is over a
 * limit through libp2p's connection gater. Unauthenticated sockets are judged at accept (they
 * cost a pending slot only, bounded by the upgrade timeout); a newcomer that completed Noise,
 * i.e. holds a key, may make room by closing an idle connection.
 */
export class ConnectionAdmission {
  readonly #o: Required<AdmissionOptions>
  readonly #maxConnections: number
  #node: Libp2p | undefined
  /** Accepted inbound sockets (in their handshake or upgraded) per address, until closed. */
  readonly #inboundByAddr = new Map<string, number>()
  readonly #pendingByAddr = new Map<string, number>()
  /** Inbound sockets in their handshake → their address and when they were accepted, oldest first. */
  readonly #pending = new Map<MultiaddrConnection, { key: string; at: number }>()
  /** Inbound sockets past Noise, not yet a connection → the peer id. */
  readonly #securing = new Map<MultiaddrConnection, string>()
  /** Connections being closed to make room; no longer counted. */
  readonly #evicting = new WeakSet<Connection>()
  readonly #stats: Omit<AdmissionStats, 'pending' | 'inbound'> = {
    refusedPending: 0,
    refusedPendingPerAddress: 0,
    replacedPending: 0,
    displacedPending: 0,
    refusedPerAddress: 0,
    refusedPerPeer: 0,
    refusedFull: 0,
    evicted: 0,
  }

  constructor(o: Required<AdmissionOptions>, maxConnections: number) {
    this.#o = o
    this.#maxConnections = maxConnections
  }

  /** The node whose connections are counted; before it is attached only per-address limits apply. */
  attach(node: Libp2p): void {
    this.#node = node
  }

  get stats(): AdmissionStats {
    let inbound = 0
    for (const n of this.#inboundByAddr.values()) inbound += n
    return { pending: this.#pending.size, inbound, ...this.#stats }
  }

  gater(): ConnectionGater {
    return {
      denyInboundConnection: (maConn) => this.#denySocket(maConn),
      denyInboundEncryptedConnection: (peer, maConn) => this.#denySecured(peer, maConn),
      denyInboundUpgradedConnection: (_peer, maConn) => {
        this.#leavePending(maConn)
        this.#securing.delete(maConn)
        return false
      },
    }
  }

  #denySocket(maConn: MultiaddrConnection): boolean {
    const key = addressKey(maConn.remoteAddr)
    if (key === undefined) return false
    const held = this.#pendingByAddr.get(key) ?? 0
    const atAddressCap = held >= this.#o.maxPendingPerAddress
    if (atAddressCap && !this.#replacePending(key)) {
      this.#stats.refusedPendingPerAddress++
      return true
    }
    if ((this.#inboundByAddr.get(key) ?? 0) >= this.#o.maxConnectionsPerAddress) {
      this.#stats.refusedPerAddress++
      return true
    }
    // A socket that replaced one of its own address's keeps the total as it was. Checked after
    // the per-address connection cap, so that no socket is closed for a newcomer then refused.
    if (!atAddressCap && this.#pending.size >= this.#o.maxPending && !this.#displacePending(held)) {
      this.#stats.refusedPending++
      return true
    }
    bump(this.#inboundByAddr, key, 1)
    bump(this.#pendingByAddr, key, 1)
    this.#pending.set(maConn, { key, at: performance.now() })
    maConn.addEventListener(
      'close',
      () => {
        this.#leavePending(maConn)
        this.#securing.delete(maConn)
        bump(this.#inboundByAddr, key, -1)
      },
      { once: true },
    )
    return false
  }

  #leavePending(maConn: MultiaddrConnection): void {
    const p = this.#pending.get(maConn)
    if (p === undefined) return
    this.#pending.delete(maConn)
    bump(this.#pendingByAddr, p.key, -1)
  }

  /**
   * Closes the oldest socket from `key` still in its handshake, if it is past `pendingGraceMs`;
   * true when room was made.
   */
  #replacePending(key: string): boolean {
    for (const [maConn, p] of this.#closablePending()) {
      if (p.key !== key) continue
      this.#closePending(maConn, 'replacedPending', 'replaced by a newer connection from the same address')
      return true
    }
    return false
  }

  /**
   * With every pending slot taken, closes a socket past `pendingGraceMs` and not yet securing:
   * the oldest such of the address that holds the most slots among those having one, if it
   * holds more than `held` (the newcomer's address's); true when room was made. The slots tend
   * to an equal share per address, so a newcomer from an address holding few finds one while
   * any address holds more.
   */
  #displacePending(held: number): boolean {
    let victim: MultiaddrConnection | undefined
    let most = held
    for (const [maConn, p] of this.#closablePending()) {
      const n = this.#pendingByAddr.get(p.key) ?? 0
      if (n > most) {
        victim = maConn
        most = n
      }
    }
    if (victim === undefined) return false
    this.#closePending(
      victim,
      'displacedPending',
      'closed to make room for a newcomer from an address holding fewer',
    )
    return true
  }

  /**
   * Sockets in their handshake that may be closed for a newcomer, oldest first: past
   * `pendingGraceMs` and not yet securing. Accept order is age order: it stops at the grace period.
   */
  *#closablePending(): Generator<[MultiaddrConnection, { key: string; at: number }]> {
    const oldEnough = performance.now() - this.#o.pendingGraceMs
    for (const entry of this.#pending) {
      if (entry[1].at > oldEnough) return
      if (!this.#securing.has(entry[0])) yield entry
    }
  }

  #closePending(
    maConn: MultiaddrConnection,
    stat: 'replacedPending' | 'displacedPending',
    why: string,
  ): void {
    this.#leavePending(maConn)
    this.#stats[stat]++
    maConn.abort(new Error(`${why} during its handshake`))
  }

  /**
   * The peer proved its key. Over the per-peer cap it may replace one of its own idle
   * connections; with the node full, the idle connection `#evictionOrder` ranks first is closed.
   */
  #denySecured(peer: PeerId, maConn: MultiaddrConnection): boolean {
    const node = this.#node
    if (node === undefined) return false
    const id = peer.toString()
    const live = (c: Connection): boolean => c.status === 'open' && !this.#evicting.has(c)
    const mine = node.getConnections(peer).filter(live)
    let securingMine = 0
    for (const p of this.#securing.values()) if (p === id) securingMine++
    if (mine.length + securingMine >= this.#o.maxConnectionsPerPeer) {
      const victim = this.#evictable(mine).sort(byAge)[0]
      if (victim === undefined) {
        this.#stats.refusedPerPeer++
        return true
      }
      this.#evict(victim)
    } else {
      const all = node.getConnections().filter(live)
      if (all.length + this.#securing.size >= this.#maxConnections) {
        const from = this.#inboundFrom(maConn.remoteAddr)
        const victim = this.#evictionOrder(this.#evictable(all, from))[0]
        if (victim === undefined) {
          this.#stats.refusedFull++
          return true
        }
        this.#evict(victim)
      }
    }
    if (this.#pending.has(maConn)) this.#securing.set(maConn, id)
    return false
  }

  /**
   * Idle connections past the grace period; with `from` (the inbound connections the newcomer's
   * address holds, its own included), also younger ones from addresses holding more than that,
   * so that the node's slots tend to an equal share per address.
   */
  #evictable(conns: Connection[], from = Number.POSITIVE_INFINITY): Connection[] {
    const oldEnough = Date.now() - this.#o.newConnectionGraceMs
    return conns.filter(
      (c) =>
        isIdle(c) &&
        (c.timeline.open <= oldEnough ||
          (c.direction === 'inbound' && this.#inboundFrom(c.remoteAddr) > from)),
    )
  }

  #inboundFrom(ma: Multiaddr): number {
    const key = addressKey(ma)
    return key === undefined ? 0 : (this.#inboundByAddr.get(key) ?? 0)
  }

  /**
   * Idle connections in the order they go: a peer's extra connections first (it keeps another),
   * then inbound before outbound (ours were dialed for a reason), then those from the address
   * holding the most inbound connections (so one address gives way first), then the oldest.
   */
  #evictionOrder(idle: Connection[]): Connection[] {
    const perPeer = new Map<string, number>()
    for (const c of this.#node?.getConnections() ?? []) bump(perPeer, c.remotePeer.toString(), 1)
    const rank = (c: Connection): [number, number, number, number] => [
      (perPeer.get(c.remotePeer.toString()) ?? 1) > 1 ? 0 : 1,
      c.direction === 'inbound' ? 0 : 1,
      -this.#inboundFrom(c.remoteAddr),
      c.timeline.open,
    ]
    const ranked = idle.map((c) => ({ c, r: rank(c) }))
    ranked.sort((a, b) => {
      for (let i = 0; i < a.r.length; i++) if (a.r[i] !== b.r[i]) return a.r[i]! - b.r[i]!
      return 0
    })
    return ranked.map((x) => x.c)
  }

  #evict(conn: Connection): void {
    this.#evicting.add(conn)
    this.#stats.evicted++
    // Graceful, so the peer's muxer sees a GoAway; an unresponsive peer is cut after a second.
    conn.close({ signal: AbortSignal.timeout(1_000) }).catch((err: Error) => conn.abort(err))
  }
}

function byAge(a: Connection, b: Connection): number {
  return a.timeline.open - b.timeline.open
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by
  if (n <= 0) m.delete(key)
  else m.set(key, n)
}
