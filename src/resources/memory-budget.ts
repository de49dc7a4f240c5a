/**
 * One memory budget per engine: every chunk buffer in flight (read, queued, in a
 * worker, in a cache) holds a lease on it, and new work waits when it is spent.
 *
 * Waiters are served strictly first come, first served: a large request at the
 * head of the queue blocks later small ones, otherwise a steady stream of small
 * requests could starve it forever. Accounting is synchronous (a lease is counted
 * the moment it is granted, not when the caller's `await` resumes), so `used`
 * never exceeds `limit`.
 */
import { engineDefaults } from '../engine/config/resolve.ts'
import { BudgetExceededError, ConfigInvalidError, InvalidArgumentError } from '../errors.ts'
import { abortedBy, throwIfAborted } from '../util/abort.ts'

export interface MemoryBudgetOptions {
  /** Bytes that may be leased at once. @default the engine's `memoryBudget` default */
  limit?: number
}

export const defaultMemoryBudgetOptions: Required<MemoryBudgetOptions> = {
  limit: engineDefaults.memoryBudget,
}

export function verifyMemoryBudgetOptions(opts: Required<MemoryBudgetOptions>): void {
  if (!Number.isSafeInteger(opts.limit) || opts.limit <= 0) {
    throw new ConfigInvalidError(`memory budget limit must be a positive integer of bytes, got ${opts.limit}`)
  }
}

/** A claim on `bytes` of the budget. Release it exactly when the memory it covers is dropped. */
export interface Lease {
  readonly bytes: number
  readonly released: boolean
  /** Returns the bytes to the budget. Idempotent. */
  release(): void
}

/**
 * A lease over `inner` that, released the first time, gives `inner` back and then tells
 * `onRelease` its bytes: how a share of a budget (budget-share.ts, serve-shares.ts) counts what
 * its holders return.
 */
export function wrapLease(inner: Lease, onRelease: (bytes: number) => void): Lease {
  let released = false
  return {
    bytes: inner.bytes,
    get released() {
      return released
    },
    release: () => {
      if (released) return
      released = true
      inner.release()
      onRelease(inner.bytes)
    },
  }
}

/** What a holder of chunk memory needs of a budget: the engine's whole one, or a share of it (budget-share.ts). */
export interface Budget {
  /** The most that may be leased through this budget at once. */
  readonly limit: number
  readonly used: number
  readonly available: number
  acquire(bytes: number, opts?: AcquireOptions): Promise<Lease>
  tryAcquire(bytes: number): Lease | undefined
}

/** Gives memory back under pressure; returns the bytes it freed (by releasing leases). */
export type Reclaimer = (needed: number) => number

export interface AcquireOptions {
  signal?: AbortSignal
}

interface Waiter {
  readonly bytes: number
  readonly resolve: (lease: Lease) => void
  readonly signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  prev: Waiter | undefined
  next: Waiter | undefined
}

export function checkBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new InvalidArgumentError(`byte count must be a non-negative integer, got ${bytes}`)
  }
}

class BudgetLease implements Lease {
  readonly bytes: number
  #budget: MemoryBudget | undefined

  constructor(budget: MemoryBudget, bytes: number) {
    this.#budget = budget
    this.bytes = bytes
  }

  get released(): boolean {
    return this.#budget === undefined
  }

  release(): void {
    const budget = this.#budget
    if (budget === undefined) return
    this.#budget = undefined
    giveBack(budget, this.bytes)
  }
}

// Set in the MemoryBudget class body so leases can return bytes without a public method.
let giveBack: (budget: MemoryBudget, bytes: number) => void

export class MemoryBudget implements Budget {
  readonly #limit: number
  #used = 0
  #peak = 0
  #head: Waiter | undefined
  #tail: Waiter | undefined
  #waiting = 0
  #pumping = false
  #reclaimer: Reclaimer | undefined
  readonly #extraReclaimers = new Set<Reclaimer>()

  static {
    giveBack = (budget, bytes) => {
      budget.#used -= bytes
      budget.#pump()
    }
  }

  constructor(opts: MemoryBudgetOptions = {}) {
    const o: Required<MemoryBudgetOptions> = { ...defaultMemoryBudgetOptions }
    if (opts.limit !== undefined) o.limit = opts.limit
    verifyMemoryBudgetOptions(o)
    this.#limit = o.limit
  }

  get limit(): number {
    return this.#limit
  }
  get used(): number {
    return this.#used
  }
  get available(): number {
    return this.#limit - this.#used
  }
  /** Number of `acquire` calls queued. */
  get waiting(): number {
    return this.#waiting
  }
  /** Highest `used` ever seen. */
  get peak(): number {
    return this.#peak
  }

  /**
   * Waits until `bytes` fit (behind every earlier waiter), then returns a lease.
   * Rejects with `BudgetExceededError` at once if `bytes > limit`, with
   * `InvalidArgumentError` for a negative or fractional count, and with
   * `AbortedError` when `signal` aborts (the waiter is removed from the queue).
   */
  acquire(bytes: number, opts: AcquireOptions = {}): Promise<Lease> {
    try {
      checkBytes(bytes)
      this.#checkLimit(bytes)
      throwIfAborted(opts.signal)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#head === undefined && bytes <= this.available) return Promise.resolve(this.#grant(bytes))
    return new Promise<Lease>((resolve, reject) => {
      const signal = opts.signal
      const w: Waiter = { bytes, resolve, signal, onAbort: undefined, prev: this.#tail, next: undefined }
      if (signal !== undefined) {
        w.onAbort = () => {
          this.#unlink(w)
          reject(abortedBy(signal))
          // The aborted waiter may have been the head blocking smaller ones behind it.
          this.#pump()
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      if (this.#tail === undefined) this.#head = w
      else this.#tail.next = w
      this.#tail = w
      this.#waiting++
      this.#pump()
    })
  }

  /**
   * A lease if nobody is waiting (fairness) and `bytes` fit now, else undefined.
   * Never calls reclaimers. Throws `BudgetExceededError` if `bytes > limit`.
   */
  tryAcquire(bytes: number): Lease | undefined {
    checkBytes(bytes)
    this.#checkLimit(bytes)
    if (this.#head !== undefined || bytes > this.available) return undefined
    return this.#grant(bytes)
  }

  /**
   * Releases `old` and grants `bytes` in its place in one step, ahead of any waiter: memory that
   * changes owner without being freed (a served chunk becoming a cache entry, src/serve/chunk-cache.ts)
   * keeps its room rather than queueing for it. `old` must be a lease on this budget, directly or
   * through a share. Undefined (and `old` kept) when `bytes` exceeds what `old` frees plus what is
   * available. Never calls reclaimers.
   */
  swap(old: Lease, bytes: number): Lease | undefined {
    checkBytes(bytes)
    if (old.released || bytes > old.bytes + this.available) return undefined
    // Counted before `old` goes, so that nothing granted meanwhile (a share forwarding a waiter
    // through tryAcquire) takes the room; waiters are pumped once `used` is back within the limit.
    this.#used += bytes
    const pumping = this.#pumping
    this.#pumping = true
    try {
      old.release()
    } finally {
      this.#pumping = pumping
    }
    if (this.#used > this.#peak) this.#peak = this.#used
    const lease = new BudgetLease(this, bytes)
    this.#pump()
    return lease
  }

  /**
   * Sets (or with `undefined` clears) the reclaimer asked to give memory back when
   * the head waiter does not fit. It runs last, after those from `addReclaimer`,
   * because it is meant for the chunk cache, whose entries are the costliest to rebuild.
   * Reclaimers must not acquire from this budget. One that throws counts as
   * having freed nothing (a process warning is emitted).
   */
  setReclaimer(fn: Reclaimer | undefined): void {
    this.#reclaimer = fn
  }

  /** Adds a reclaimer run before the one from `setReclaimer` (e.g. idle pooled buffers). Returns its remover. */
  addReclaimer(fn: Reclaimer): () => void {
    this.#extraReclaimers.add(fn)
    return () => {
      this.#extraReclaimers.delete(fn)
    }
  }

  #checkLimit(bytes: number): void {
    if (bytes > this.#limit) {
      throw new BudgetExceededError(
        `a request for ${bytes} bytes can never fit a memory budget of ${this.#limit} bytes; raise the budget limit or lower the chunk size`,
      )
    }
  }

  #grant(bytes: number): Lease {
    this.#used += bytes
    if (this.#used > this.#peak) this.#peak = this.#used
    return new BudgetLease(this, bytes)
  }

  #unlink(w: Waiter): void {
    if (w.prev === undefined) this.#head = w.next
    else w.prev.next = w.next
    if (w.next === undefined) this.#tail = w.prev
    else w.next.prev = w.prev
    w.prev = w.next = undefined
    this.#waiting--
  }

  /** Grants head waiters while they fit; asks reclaimers once when the head does not. */
  #pump(): void {
    // Reclaimers release leases, which calls back here; the outer loop re-reads the head.
    if (this.#pumping) return
    this.#pumping = true
    try {
      for (;;) {
        const w = this.#head
        if (w === undefined) return
        if (w.bytes > this.available) {
          this.#reclaim(w.bytes - this.available)
          if (w.bytes > this.available) return
        }
        this.#unlink(w)
        if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort)
        w.resolve(this.#grant(w.bytes))
      }
    } finally {
      this.#pumping = false
    }
  }

  #reclaim(needed: number): void {
    for (const fn of [...this.#extraReclaimers, this.#reclaimer]) {
      if (fn === undefined) continue
      try {
        fn(needed)
      } catch (err) {
        process.emitWarning(`memory budget reclaimer threw: ${String(err)}`, 'HaulWarning')
      }
      needed = (this.#head?.bytes ?? 0) - this.available
      if (needed <= 0) return
    }
  }
}
