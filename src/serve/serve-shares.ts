/**
 * How the serving side of an engine divides its memory budget between the peers it serves, and
 * what it holds for each of them outside the budget (unfinished request frames).
 *
 * Why: a serve lease comes back only once the peer takes the chunk it covers. With one pool
 * for everyone, four streams of one peer that never reads held the whole budget and every other
 * peer's download stopped. So each peer leases through its own share:
 * - the peers being served (holding or waiting for a lease) split SHARED_PARTS of the budget
 *   equally; the rest is where a peer not yet served starts, at once, while the others hold
 *   their whole shares;
 * - a peer holding nothing may always take one lease (one chunk in flight), whatever its share;
 * - a share shrinks as peers arrive; a peer above its new share waits until it is under again.
 *   A reader gives back within a chunk's send time. What a peer that stopped reading holds comes
 *   back when its stalled streams are reset: while someone else waits for the budget and the
 *   peer is over its share, after a fifth of `server.stallTimeoutMs` (`mustShed`, used by
 *   serve-guard.ts); otherwise after all of it.
 * Waiters over their peer's share queue here, first come first served, and reach the engine
 * budget (itself first come first served) only once they fit it.
 */
import { BudgetExceededError } from '../errors.ts'
import { ShareQueue } from '../resources/budget-share.ts'
import {
  type AcquireOptions,
  type Budget,
  checkBytes,
  type Lease,
  type MemoryBudget,
  wrapLease,
} from '../resources/memory-budget.ts'

/** The part of the budget (out of SHARE_DIVISOR) the peers being served divide between them. */
const SHARED_PARTS = 3
const SHARE_DIVISOR = 4

export interface ServeStats {
  /** Peers with a serving stream open or a lease not yet given back. */
  readonly peers: number
  /** Peers holding or waiting for a lease. */
  readonly served: number
  /** Budget bytes leased (or reserved and waiting at the engine budget) by serving streams, and cached chunks held by them (PeerShare.hold). */
  readonly leased: number
  /** Bytes of unfinished request frames held across every peer's streams. */
  readonly partialBytes: number
}

export class ServeShares {
  readonly #budget: MemoryBudget
  readonly #peers = new Map<string, PeerShare>()
  /** Peers with `used > 0` or waiters. */
  #served = 0

  constructor(budget: MemoryBudget) {
    this.#budget = budget
  }

  /** A serving stream of `peer` starts; call `leave` on the result when it ends. */
  join(peer: string): PeerShare {
    let share = this.#peers.get(peer)
    if (share === undefined) {
      share = new PeerShare(this, this.#budget, peer)
      this.#peers.set(peer, share)
    }
    share.streams++
    return share
  }

  get stats(): ServeStats {
    let leased = 0
    let partialBytes = 0
    for (const p of this.#peers.values()) {
      leased += p.used
      partialBytes += p.partialBytes
    }
    return { peers: this.#peers.size, served: this.#served, leased, partialBytes }
  }

  /** The share of a peer; `active`: whether it already counts among the peers being served. */
  capFor(active: boolean): number {
    const n = this.#served + (active ? 0 : 1)
    const shared = Math.floor((this.#budget.limit * SHARED_PARTS) / SHARE_DIVISOR)
    return Math.floor(shared / Math.max(1, n))
  }

  /**
   * Whether someone other than `share`'s peer waits for the engine budget: another peer's serve
   * lease that fits its share, or a fetch.
   */
  contended(share: PeerShare): boolean {
    return this.#budget.waiting > share.atParent
  }

  /** Called by a share whose activity changed; a peer that stops being served grows the others' shares. */
  activity(share: PeerShare, active: boolean): void {
    this.#served += active ? 1 : -1
    if (!active) for (const p of this.#peers.values()) if (p !== share) p.pump()
  }

  forget(share: PeerShare): void {
    if (this.#peers.get(share.peer) === share) this.#peers.delete(share.peer)
  }
}

/** One peer's part of the serving budget, shared by all its serving streams. */
export class PeerShare implements Budget {
  readonly peer: string
  /** Serving streams of this peer that are open. */
  streams = 0
  /** Bytes of unfinished request frames its streams hold. */
  partialBytes = 0
  readonly #shares: ServeShares
  readonly #parent: MemoryBudget
  #used = 0
  /** Leases forwarded to the engine budget and not yet granted. */
  #atParent = 0
  #active = false
  readonly #queue = new ShareQueue({
    neverFits: (bytes) =>
      bytes > this.#parent.limit
        ? new BudgetExceededError(
            `a request for ${bytes} bytes can never fit a memory budget of ${this.#parent.limit} bytes; raise memoryBudget (haul: --memory)`,
          )
        : undefined,
    fits: (bytes) => this.#fits(bytes),
    forward: (bytes, opts) => this.#forward(bytes, opts),
    changed: () => this.#update(),
  })

  constructor(shares: ServeShares, parent: MemoryBudget, peer: string) {
    this.#shares = shares
    this.#parent = parent
    this.peer = peer
  }

  /** The most this peer may hold now (it may still take one lease when it holds nothing). */
  get limit(): number {
    return this.#shares.capFor(this.#active)
  }

  get used(): number {
    return this.#used
  }

  get available(): number {
    return Math.max(0, Math.min(this.limit - this.#used, this.#parent.available))
  }

  get waiting(): number {
    return this.#queue.length
  }

  /** Serve leases of this peer waiting at the engine budget. */
  get atParent(): number {
    return this.#atParent
  }

  /**
   * True when this peer holds more than its share while someone else waits for the budget: its
   * stalled streams should be reset so that what they hold goes to the others.
   */
  mustShed(): boolean {
    return this.#used > this.limit && this.#shares.contended(this)
  }

  /** A stream of this peer ended; the share goes once nothing of it is left. */
  leave(): void {
    this.streams--
    this.#maybeForget()
  }

  acquire(bytes: number, opts: AcquireOptions = {}): Promise<Lease> {
    return this.#queue.acquire(bytes, opts)
  }

  /**
   * Counts `bytes` against this peer's share, waiting in its line like `acquire`, without leasing
   * them from the engine budget: a cached chunk lent to one of its streams (src/serve/chunk-cache.ts),
   * whose memory the cache's lease covers once for all its senders. So what a peer that stops
   * reading pins still fills its share, and its stalled streams are shed as before.
   */
  hold(bytes: number, opts: AcquireOptions = {}): Promise<Lease> {
    return this.#queue.acquire(bytes, opts, (n) => {
      this.#used += n
      this.#update()
      let released = false
      return Promise.resolve<Lease>({
        bytes: n,
        get released() {
          return released
        },
        release: () => {
          if (released) return
          released = true
          this.#giveBack(n)
        },
      })
    })
  }

  tryAcquire(bytes: number): Lease | undefined {
    checkBytes(bytes)
    if (this.#queue.length > 0 || !this.#fits(bytes)) return undefined
    const lease = this.#parent.tryAcquire(bytes)
    if (lease === undefined) return undefined
    this.#used += bytes
    this.#update()
    return wrapLease(lease, this.#giveBack)
  }

  /** Grants queued waiters that fit the share now. */
  pump(): void {
    this.#queue.pump()
  }

  #fits(bytes: number): boolean {
    return this.#used === 0 || this.#used + bytes <= this.limit
  }

  /** Counts `bytes` against the share now, then waits for them in the engine budget. */
  async #forward(bytes: number, opts: AcquireOptions): Promise<Lease> {
    this.#used += bytes
    this.#update()
    const granted = this.#parent.tryAcquire(bytes)
    if (granted !== undefined) return wrapLease(granted, this.#giveBack)
    this.#atParent++
    try {
      return wrapLease(await this.#parent.acquire(bytes, opts), this.#giveBack)
    } catch (err) {
      this.#giveBack(bytes)
      throw err
    } finally {
      this.#atParent--
    }
  }

  readonly #giveBack = (bytes: number): void => {
    this.#used -= bytes
    this.pump()
    this.#update()
    this.#maybeForget()
  }

  /** Tells the shares when this peer starts or stops being served (holding or waiting). */
  #update(): void {
    const active = this.#used > 0 || this.#queue.length > 0
    if (active === this.#active) return
    this.#active = active
    this.#shares.activity(this, active)
  }

  #maybeForget(): void {
    if (this.streams === 0 && this.#used === 0 && this.#queue.length === 0) this.#shares.forget(this)
  }
}
