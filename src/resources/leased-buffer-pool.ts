/**
 * Same-size chunk buffers for one fixed-depth pipeline (the indexer's read → hash loop), each
 * handed out under a lease the pool takes and holds: `acquire` waits for the budget, `release`
 * keeps the buffer and its lease for the next `acquire`.
 *
 * Why there are two buffer managers: this pool and BufferRecycler (buffer-recycler.ts) differ
 * in who holds the lease and in what they bound.
 * - LeasedBufferPool: one size; it leases every buffer it hands out, for one job (created and
 *   destroyed with the pipeline); idle buffers are bounded by count (`maxIdle`, the pipeline
 *   depth) and every one keeps its lease; at most HANDED_MAX buffers are ever kept outside the
 *   budget, whatever the chunk size or the number of threads.
 * - BufferRecycler: one per engine, any size; it keeps only idle buffers, and whoever takes one
 *   covers it with a lease of its own (a fetch window's batch lease, a served chunk's lease);
 *   idle and handed-over buffers are bounded by bytes (`buffers.maxIdleBytes`) and handed-over
 *   ones by time (HAND_OVER_MS).
 * The indexer cannot move to the recycler with the same bounds: sized for the pipeline depth
 * (which grows with the threads), a recycler may keep that many chunk buffers outside the
 * budget; with the engine's 8 MiB default it keeps no chunk over 8 MiB and allocates each afresh.
 *
 * Leases belong to the pool, not to a particular buffer: a buffer may come back
 * "replaced" (a different Uint8Array over a different ArrayBuffer of the same
 * size, e.g. after a round trip through a worker thread with a transfer list),
 * so the pool only counts how many buffers are out and keeps one lease for each.
 *
 * Each buffer owns its whole ArrayBuffer so it can be transferred to a worker.
 * Recycled buffers are not zeroed: they hold whatever the previous user wrote.
 *
 * A buffer released while others wait for the budget gives its lease back at
 * once (they may need the memory) but is itself kept, without a lease, for this
 * pool's next `acquire` to reuse once that gets a lease: with a budget that
 * holds only a few of the pool's buffers, the waiter is usually the pool itself,
 * and dropping the buffer means allocating and zero-filling the same size again
 * for every chunk (indexing 4 MiB chunks with a 16 MiB budget: 0.68x the
 * SHA-256 rate and a 201 MB peak). At most HANDED_MAX such buffers are kept.
 */
import { AbortedError, ConfigInvalidError, InvalidArgumentError } from '../errors.ts'
import { throwIfAborted } from '../util/abort.ts'
import type { Lease, MemoryBudget } from './memory-budget.ts'

export interface LeasedBufferPoolOptions {
  /**
   * Buffers kept (with their leases) for reuse after release; beyond that they are
   * dropped and their memory returned to the budget.
   * @default 2
   */
  maxIdle?: number
}

export const defaultLeasedBufferPoolOptions: Required<LeasedBufferPoolOptions> = { maxIdle: 2 }

/** Buffers kept without a lease for the next `acquire` (memory outside the budget, briefly). */
export const HANDED_MAX = 2

export function verifyLeasedBufferPoolOptions(opts: Required<LeasedBufferPoolOptions>): void {
  if (!Number.isSafeInteger(opts.maxIdle) || opts.maxIdle < 0) {
    throw new ConfigInvalidError(`buffer pool maxIdle must be a non-negative integer, got ${opts.maxIdle}`)
  }
}

export class LeasedBufferPool {
  readonly #budget: MemoryBudget
  readonly #size: number
  readonly #maxIdle: number
  /** Idle buffers, each with the lease covering it; used as a stack so the warmest is reused first. */
  readonly #idle: { buf: Uint8Array<ArrayBuffer>; lease: Lease }[] = []
  /** Released while the budget had waiters: lease returned, buffer kept for the next acquire. */
  readonly #handed: Uint8Array<ArrayBuffer>[] = []
  /** One lease per buffer currently handed out. */
  readonly #outLeases: Lease[] = []
  readonly #destroyed = new AbortController()
  readonly #removeReclaimer: () => void

  constructor(budget: MemoryBudget, size: number, opts: LeasedBufferPoolOptions = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new ConfigInvalidError(`buffer pool size must be a positive integer of bytes, got ${size}`)
    }
    if (size > budget.limit) {
      throw new ConfigInvalidError(
        `buffer pool size ${size} exceeds the memory budget limit ${budget.limit}; raise the limit or lower the chunk size`,
      )
    }
    const o: Required<LeasedBufferPoolOptions> = { ...defaultLeasedBufferPoolOptions }
    if (opts.maxIdle !== undefined) o.maxIdle = opts.maxIdle
    verifyLeasedBufferPoolOptions(o)
    this.#budget = budget
    this.#size = size
    this.#maxIdle = o.maxIdle
    // Idle buffers are the cheapest memory to give back to a waiter.
    this.#removeReclaimer = budget.addReclaimer((needed) => this.#dropIdle(needed))
  }

  /** Byte length of every buffer in this pool. */
  get size(): number {
    return this.#size
  }
  /** Buffers handed out and not yet released. */
  get outstanding(): number {
    return this.#outLeases.length
  }
  /** Buffers kept for reuse. */
  get idle(): number {
    return this.#idle.length
  }

  /**
   * A buffer of `size` bytes (contents unspecified), waiting for budget if needed.
   * Rejects with `AbortedError` if `signal` aborts or the pool is destroyed.
   */
  async acquire(opts: { signal?: AbortSignal } = {}): Promise<Uint8Array<ArrayBuffer>> {
    throwIfAborted(opts.signal)
    this.#throwIfDestroyed()
    const entry = this.#idle.pop()
    if (entry !== undefined) {
      this.#outLeases.push(entry.lease)
      return entry.buf
    }
    const ours = this.#destroyed.signal
    const signal = opts.signal === undefined ? ours : AbortSignal.any([opts.signal, ours])
    let lease: Lease
    try {
      lease = await this.#budget.acquire(this.#size, { signal })
    } catch (err) {
      if (ours.aborted && !opts.signal?.aborted) this.#throwIfDestroyed()
      throw err
    }
    if (ours.aborted) {
      lease.release()
      this.#throwIfDestroyed()
    }
    this.#outLeases.push(lease)
    return this.#handed.pop() ?? new Uint8Array(this.#size)
  }

  /** Buffers kept without a lease for the next acquire. */
  get handed(): number {
    return this.#handed.length
  }

  /**
   * Returns a buffer. Accepts any Uint8Array over a (non-shared) ArrayBuffer of exactly
   * `size` bytes, even one this pool did not hand out, as long as a buffer is outstanding;
   * a view of part of it is widened to the whole buffer. The caller must not touch it afterwards.
   * Throws `InvalidArgumentError` for a wrong size, a detached buffer, a buffer already
   * idle here, or when no buffer is outstanding.
   */
  release(buf: Uint8Array): void {
    const ab = buf.buffer
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== this.#size) {
      throw new InvalidArgumentError(
        `buffer pool of ${this.#size}-byte buffers was given a ${ab.byteLength}-byte ${ab instanceof ArrayBuffer ? 'ArrayBuffer' : 'shared buffer'}`,
      )
    }
    if (this.#idle.some((e) => e.buf.buffer === ab)) {
      throw new InvalidArgumentError('buffer released twice to the buffer pool')
    }
    const lease = this.#outLeases.pop()
    if (lease === undefined) {
      throw new InvalidArgumentError('buffer pool released more buffers than it handed out')
    }
    const whole = buf.byteOffset === 0 && buf.byteLength === ab.byteLength
    const own = whole ? (buf as Uint8Array<ArrayBuffer>) : new Uint8Array(ab)
    if (this.#destroyed.signal.aborted || this.#idle.length >= this.#maxIdle) {
      lease.release()
      return
    }
    // Keeping a lease idle while someone waits for budget would hold memory they need.
    if (this.#budget.waiting > 0) {
      lease.release()
      if (this.#handed.length < HANDED_MAX) this.#handed.push(own)
      return
    }
    this.#idle.push({ buf: own, lease })
  }

  /**
   * Accounts for a buffer that will never come back (a worker task that failed
   * after the buffer was moved to it): its lease is returned to the budget.
   */
  discard(): void {
    const lease = this.#outLeases.pop()
    if (lease === undefined)
      throw new InvalidArgumentError('buffer pool discarded more buffers than it handed out')
    lease.release()
  }

  /** Drops idle and handed-over buffers, releasing the idle ones' leases. */
  trim(): void {
    this.#dropIdle(Number.POSITIVE_INFINITY)
    this.#handed.length = 0
  }

  /**
   * Drops idle buffers and rejects pending `acquire` calls. Buffers still out may be
   * released afterwards; their leases are then returned instead of kept.
   */
  destroy(): void {
    if (this.#destroyed.signal.aborted) return
    this.#destroyed.abort()
    this.#removeReclaimer()
    this.trim()
  }

  #dropIdle(needed: number): number {
    let freed = 0
    while (freed < needed) {
      const entry = this.#idle.pop()
      if (entry === undefined) break
      entry.lease.release()
      freed += entry.lease.bytes
    }
    return freed
  }

  #throwIfDestroyed(): void {
    if (this.#destroyed.signal.aborted) throw new AbortedError('the buffer pool was destroyed')
  }
}
