import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { InternalError, InvalidArgumentError } from '../errors.ts'
import { decodeSwarmTicket, encodeSwarmTicket } from '../ticket/multi-ticket.ts'

/**
 * A TCP proxy on 127.0.0.1 that sits between two peers and injects the faults
 * the kernel here cannot (no netem): cut a connection at a chosen byte offset
 * or time, stall it, and slow it with a token bucket. The receiver dials the
 * proxy (`proxyTicket` rewrites a ticket's addresses); the proxy dials the real
 * peer. Every fault hits real sockets, so the peers see what they would see on
 * a real network: a reset, a FIN mid-frame, silence, a slow link.
 *
 * haul keeps one connection per peer: an engine that is already connected to
 * the peer directly reuses that connection and never dials the proxy. Put a
 * fresh engine (or process) behind a proxy.
 *
 * Faults are given per connection by `plan(index)` (the load-test harness can
 * draw them at random) or applied to all connections at once (`cutAll`,
 * `stall`, `setRate`).
 */

export interface FaultPlan {
  /** Cut once this many bytes (both directions together) have gone through. */
  cutAfterBytes?: number
  /** Cut this long after the connection opened. */
  cutAfterMs?: number
  /** Stop forwarding (sockets stay open) once this many bytes went through... */
  stallAfterBytes?: number
  /** ...for this long. @default Infinity (until `resume()` or a cut) */
  stallMs?: number
}

export interface FaultProxyOptions {
  /** The real peer. */
  target: { host?: string; port: number }
  /** Port to listen on. @default 0 (any free port) */
  port?: number
  /** Link rate, bytes per second per direction, shared by all connections. @default unlimited */
  rateBytesPerSec?: number
  /** Bytes the link may send at once after being idle. @default 64 KiB */
  burstBytes?: number
  /** How a cut looks to the peers: a TCP reset, or a FIN (clean close mid-stream). @default 'reset' */
  cutMode?: 'reset' | 'close'
  /** The fault plan of connection number `index` (0-based). */
  plan?: (index: number) => FaultPlan | undefined
  /** Called at each cut (planned or `cutAll`), with the connection's number: the load test logs them. */
  onCut?: (index: number) => void
}

export interface FaultProxyStats {
  connections: number
  active: number
  cuts: number
  /** Bytes from the target to the dialer (what the dialer downloads from the target). */
  bytesDown: number
  /**
   * Bytes from the dialer to the target: requests, and whatever the target downloads from the
   * dialer over the same connection (peers keep one connection per pair, whoever dialed it).
   */
  bytesUp: number
}

const SLICE = 16 * 1024

/** Virtual-clock token bucket (GCRA): callers reserve a send time; safe to share between pumps. */
class TokenBucket {
  rate: number
  readonly burstMs: number
  #t = 0

  constructor(rate: number, burst: number) {
    this.rate = rate
    this.burstMs = (burst / rate) * 1000
  }

  async take(n: number): Promise<void> {
    const now = performance.now()
    this.#t = Math.max(this.#t, now) + (n / this.rate) * 1000
    const wait = this.#t - now - this.burstMs
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
}

class Conn {
  readonly index: number
  readonly client: Socket
  readonly upstream: Socket
  readonly plan: FaultPlan
  bytes = 0
  closed = false
  stalledUntil = 0
  readonly #proxy: FaultProxy
  readonly #timers: NodeJS.Timeout[] = []

  constructor(proxy: FaultProxy, index: number, client: Socket, upstream: Socket, plan: FaultPlan) {
    this.#proxy = proxy
    this.index = index
    this.client = client
    this.upstream = upstream
    this.plan = plan
    if (plan.cutAfterMs !== undefined) this.#timers.push(setTimeout(() => this.cut(), plan.cutAfterMs))
  }

  cut(mode = this.#proxy.cutMode): void {
    if (this.closed) return
    this.#proxy.noteCut(this.index)
    for (const s of [this.client, this.upstream]) {
      if (mode === 'reset' && !s.destroyed && s.readyState !== 'opening') s.resetAndDestroy()
      else s.destroy()
    }
    this.finish()
  }

  finish(): void {
    if (this.closed) return
    this.closed = true
    for (const t of this.#timers) clearTimeout(t)
    this.client.destroy()
    this.upstream.destroy()
    this.#proxy.forget(this)
  }
}

export class FaultProxy {
  readonly cutMode: 'reset' | 'close'
  readonly #server: Server
  readonly #target: { host: string; port: number }
  readonly #conns = new Set<Conn>()
  readonly #stats: FaultProxyStats = { connections: 0, active: 0, cuts: 0, bytesDown: 0, bytesUp: 0 }
  #plan: ((index: number) => FaultPlan | undefined) | undefined
  readonly #onCut: ((index: number) => void) | undefined
  #buckets: { down: TokenBucket; up: TokenBucket } | undefined
  readonly #burst: number
  #stalledUntil = 0
  #wakers: Array<() => void> = []

  private constructor(server: Server, o: FaultProxyOptions) {
    this.#server = server
    this.#target = { host: o.target.host ?? '127.0.0.1', port: o.target.port }
    this.cutMode = o.cutMode ?? 'reset'
    this.#plan = o.plan
    this.#onCut = o.onCut
    this.#burst = o.burstBytes ?? 64 * 1024
    this.setRate(o.rateBytesPerSec)
  }

  static async start(o: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ noDelay: true })
    const proxy = new FaultProxy(server, o)
    server.on('connection', (s) => proxy.#accept(s))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(o.port ?? 0, '127.0.0.1', () => resolve())
    })
    return proxy
  }

  get port(): number {
    const a = this.#server.address()
    if (a === null || typeof a === 'string') throw new InternalError('the fault proxy is not listening')
    return a.port
  }

  get stats(): Readonly<FaultProxyStats> {
    return { ...this.#stats, active: this.#conns.size }
  }

  /** The proxy's address as the receiver should dial it, for the peer behind it. */
  multiaddr(peerId: string): string {
    return `/ip4/127.0.0.1/tcp/${this.port}/p2p/${peerId}`
  }

  setPlan(plan: ((index: number) => FaultPlan | undefined) | undefined): void {
    this.#plan = plan
  }

  /** Changes the link rate (undefined: unlimited); applies to bytes not yet forwarded. */
  setRate(bytesPerSec: number | undefined): void {
    this.#buckets =
      bytesPerSec === undefined
        ? undefined
        : { down: new TokenBucket(bytesPerSec, this.#burst), up: new TokenBucket(bytesPerSec, this.#burst) }
  }

  /** Cuts every open connection now; returns how many there were. */
  cutAll(mode: 'reset' | 'close' = this.cutMode): number {
    const n = this.#conns.size
    for (const c of [...this.#conns]) c.cut(mode)
    return n
  }

  /** Stops forwarding on every connection (open and new) for `ms`, or until `resume()`. */
  stall(ms = Number.POSITIVE_INFINITY): void {
    this.#stalledUntil = performance.now() + ms
    if (Number.isFinite(ms)) setTimeout(() => this.#wake(), ms + 1).unref()
  }

  resume(): void {
    this.#stalledUntil = 0
    for (const c of this.#conns) c.stalledUntil = 0
    this.#wake()
  }

  async close(): Promise<void> {
    for (const c of [...this.#conns]) c.finish()
    this.#wake()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  noteCut(index: number): void {
    this.#stats.cuts++
    this.#onCut?.(index)
  }

  forget(c: Conn): void {
    this.#conns.delete(c)
  }

  #wake(): void {
    const w = this.#wakers
    this.#wakers = []
    for (const f of w) f()
  }

  #accept(client: Socket): void {
    const index = this.#stats.connections++
    const plan = this.#plan?.(index) ?? {}
    const upstream = tcpConnect({ host: this.#target.host, port: this.#target.port, noDelay: true })
    const conn = new Conn(this, index, client, upstream, plan)
    this.#conns.add(conn)
    for (const s of [client, upstream]) {
      s.on('error', () => conn.finish())
      s.on('close', () => conn.finish())
    }
    void this.#pump(conn, upstream, client, 'down')
    void this.#pump(conn, client, upstream, 'up')
  }

  /** Moves bytes src → dst one slice at a time, applying the connection's faults before each slice. */
  async #pump(conn: Conn, src: Socket, dst: Socket, dir: 'down' | 'up'): Promise<void> {
    const queue: Buffer[] = []
    let wake: (() => void) | undefined
    src.on('data', (b: Buffer) => {
      queue.push(b)
      src.pause()
      wake?.()
    })
    src.on('end', () => {
      queue.push(Buffer.alloc(0)) // end marker
      wake?.()
    })
    const closed = new Promise<void>((r) => {
      src.once('close', () => r())
      dst.once('close', () => r())
    })
    while (!conn.closed) {
      if (queue.length === 0) {
        await Promise.race([new Promise<void>((r) => (wake = r)), closed])
        wake = undefined
        continue
      }
      const buf = queue.shift()!
      if (buf.length === 0) {
        dst.end()
        return
      }
      for (let off = 0; off < buf.length && !conn.closed; ) {
        await this.#whileStalled(conn, closed)
        if (conn.closed) return
        let n = Math.min(buf.length - off, SLICE)
        const p = conn.plan
        if (p.cutAfterBytes !== undefined) {
          if (conn.bytes >= p.cutAfterBytes) return conn.cut()
          n = Math.min(n, p.cutAfterBytes - conn.bytes)
        }
        if (p.stallAfterBytes !== undefined && conn.bytes < p.stallAfterBytes) {
          n = Math.min(n, p.stallAfterBytes - conn.bytes)
        }
        await this.#buckets?.[dir].take(n)
        if (conn.closed) return
        const ok = dst.write(buf.subarray(off, off + n))
        off += n
        conn.bytes += n
        if (dir === 'down') this.#stats.bytesDown += n
        else this.#stats.bytesUp += n
        if (p.stallAfterBytes !== undefined && conn.bytes === p.stallAfterBytes) {
          conn.stalledUntil = performance.now() + (p.stallMs ?? Number.POSITIVE_INFINITY)
          if (p.stallMs !== undefined) setTimeout(() => this.#wake(), p.stallMs + 1).unref()
        }
        if (!ok) await Promise.race([new Promise<void>((r) => dst.once('drain', () => r())), closed])
      }
      if (queue.length === 0 && !conn.closed) src.resume()
    }
  }

  async #whileStalled(conn: Conn, closed: Promise<void>): Promise<void> {
    while (!conn.closed && performance.now() < Math.max(this.#stalledUntil, conn.stalledUntil)) {
      await Promise.race([new Promise<void>((r) => this.#wakers.push(r)), closed])
    }
  }
}

/** The same ticket (secrets included), pointing the receiver at `proxy` instead of the sender's own addresses. */
export function proxyTicket(ticket: string, proxy: FaultProxy): string {
  const t = decodeSwarmTicket(ticket)
  return encodeSwarmTicket({
    ...t,
    providers: t.providers.map((p) => ({ ...p, addrs: [proxy.multiaddr(p.peerId)] })),
  })
}

/** A uniformly random whole number in [min, max]. */
export function randomInt(min: number, max: number, random: () => number = Math.random): number {
  return min + Math.floor(random() * (max - min + 1))
}

/** The sender's TCP port from its multiaddrs (the first /ip4/127.0.0.1/tcp/ one). */
export function tcpPortOf(addrs: readonly string[]): number {
  for (const a of addrs) {
    const m = /\/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(a)
    if (m !== null) return Number(m[1])
  }
  throw new InvalidArgumentError(`no 127.0.0.1 TCP address in ${addrs.join(', ')}`)
}
