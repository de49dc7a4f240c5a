/**
 * A part of the engine's memory budget that one role may hold at most: the fetching side of an
 * engine leases through a share of `memoryBudget - serveReserve`, so serving always finds room.
 *
 * Why: every engine both serves and fetches. With one pool, two engines fetching from each other
 * could each lend their whole budget to their own fetch windows; each one's server then waits for
 * memory to read the chunks the other is waiting for, and both stall until their streams time
 * out (seen: 400 transfers in a two-process mesh, every one stuck at 0 B/s). A fetch lease comes
 * back only when the peer serves, a serve lease as soon as the peer reads. With the fetches held
 * below the whole budget, a serve request no larger than `serveReserve` waits at most for other
 * serve leases, which free themselves, so serving on both sides always moves.
 *
 * Waiters over the share's cap queue here, first come first served, and reach the engine budget
 * (itself first come first served) only once they fit the cap.
 */
import { BudgetExceededError } from '../errors.ts'
import { abortedBy, throwIfAborted } from '../util/abort.ts'
import {
  type AcquireOptions,
  type Budget,
  checkBytes,
  type Lease,
  type MemoryBudget,
  wrapLease,
} from './memory-budget.ts'

interface Waiter {
  readonly bytes: number
  readonly opts: AcquireOptions
  /** Overrides the hooks' `forward` for this request (PeerShare.hold). */
  readonly forward: ShareQueueHooks['forward'] | undefined
  readonly resolve: (lease: Lease) => void
  readonly reject: (err: unknown) => void
  onAbort: (() => void) | undefined
}

/** What a share of a budget tells its queue. */
export interface ShareQueueHooks {
  /** Why `bytes` can never be leased through the share, or undefined. */
  neverFits(bytes: number): BudgetExceededError | undefined
  /** Whether `bytes` more fit the share now. */
  fits(bytes: number): boolean
  /** Counts `bytes` against the share, then leases them from the engine budget. */
  forward(bytes: number, opts: AcquireOptions): Promise<Lease>
  /** The queue grew or an aborted waiter left it. */
  changed?(): void
}

/**
 * The first-come-first-served line in front of a share of a budget (BudgetShare here, each
 * peer's PeerShare in serve-shares.ts): a request goes through at once when nobody waits and it
 * fits the share, else it waits here until `pump` finds it at the head and fitting; an aborted
 * waiter leaves the line and lets the next ones through.
 */
export class ShareQueue {
  readonly #hooks: ShareQueueHooks
  readonly #waiters: Waiter[] = []

  constructor(hooks: ShareQueueHooks) {
    this.#hooks = hooks
  }

  get length(): number {
    return this.#waiters.length
  }

  /**
   * The share's `acquire`: refuses a bad or impossible request at once, else goes through or
   * waits; `forward`, when given, is what going through does instead of the hooks'.
   */
  acquire(bytes: number, opts: AcquireOptions, forward = this.#hooks.forward): Promise<Lease> {
    try {
      checkBytes(bytes)
      const never = this.#hooks.neverFits(bytes)
      if (never !== undefined) throw never
      throwIfAborted(opts.signal)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#waiters.length === 0 && this.#hooks.fits(bytes)) return forward(bytes, opts)
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = { bytes, opts, forward, resolve, reject, onAbort: undefined }
      const signal = opts.signal
      if (signal !== undefined) {
        w.onAbort = () => {
          const i = this.#waiters.indexOf(w)
          if (i !== -1) this.#waiters.splice(i, 1)
          reject(abortedBy(signal))
          this.#hooks.changed?.()
          this.pump()
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.#waiters.push(w)
      this.#hooks.changed?.()
    })
  }

  /** Forwards the waiters at the head of the line that fit the share now. */
  pump(): void {
    for (;;) {
      const w = this.#waiters[0]
      if (w === undefined || !this.#hooks.fits(w.bytes)) return
      this.#waiters.shift()
      if (w.onAbort !== undefined) w.opts.signal?.removeEventListener('abort', w.onAbort)
      ;(w.forward ?? this.#hooks.forward)(w.bytes, w.opts).then(w.resolve, w.reject)
    }
  }
}

export class BudgetShare implements Budget {
  readonly #parent: MemoryBudget
  readonly #cap: number
  #used = 0
  readonly #queue = new ShareQueue({
    neverFits: (bytes) =>
      bytes > this.#cap
        ? new BudgetExceededError(
            `a request for ${bytes} bytes can never fit the ${this.#cap} bytes fetches may hold of the memory budget; raise memoryBudget (haul: --memory)`,
          )
        : undefined,
    fits: (bytes) => this.#used + bytes <= this.#cap,
    forward: (bytes, opts) => this.#forward(bytes, opts),
  })

  constructor(parent: MemoryBudget, cap: number) {
    checkBytes(cap)
    this.#parent = parent
    this.#cap = Math.min(cap, parent.limit)
  }

  /** The most this share holds at once. */
  get limit(): number {
    return this.#cap
  }

  /** Bytes leased through this share (granted, or reserved and waiting at the engine budget). */
  get used(): number {
    return this.#used
  }

  get available(): number {
    return Math.max(0, Math.min(this.#cap - this.#used, this.#parent.available))
  }

  get waiting(): number {
    return this.#queue.length
  }

  acquire(bytes: number, opts: AcquireOptions = {}): Promise<Lease> {
    return this.#queue.acquire(bytes, opts)
  }

  tryAcquire(bytes: number): Lease | undefined {
    checkBytes(bytes)
    if (this.#queue.length > 0 || this.#used + bytes > this.#cap) return undefined
    const lease = this.#parent.tryAcquire(bytes)
    if (lease === undefined) return undefined
    this.#used += bytes
    return wrapLease(lease, this.#giveBack)
  }

  /** Counts `bytes` against the cap now, then waits for them in the engine budget. */
  async #forward(bytes: number, opts: AcquireOptions): Promise<Lease> {
    this.#used += bytes
    try {
      return wrapLease(await this.#parent.acquire(bytes, opts), this.#giveBack)
    } catch (err) {
      this.#giveBack(bytes)
      throw err
    }
  }

  readonly #giveBack = (bytes: number): void => {
    this.#used -= bytes
    this.#queue.pump()
  }
}
