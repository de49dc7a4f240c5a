/**
 * Keeps chunk buffers that finished their work so the next chunk of the same
 * size reuses the memory instead of allocating.
 *
 * Why: a fresh 1 MiB ArrayBuffer per chunk costs far more than its bytes. On
 * this machine allocating, filling and dropping 512 × 1 MiB buffers took
 * ~2.1 s of CPU against ~0.5 s when the same buffers were reused (V8 full
 * GCs driven by the external memory, page faults on fresh mappings): about
 * 3 ms per MiB, which was a third of a transfer's CPU on each side.
 *
 * Unlike BufferPool (one size, leases for buffers in use), the recycler holds
 * only idle buffers: whoever takes one covers it with its own lease (the
 * fetcher's batch lease). Each idle buffer keeps a lease of its own on the
 * engine's budget, taken without waiting; when the budget has no room the
 * buffer is simply dropped, and a waiter on the budget reclaims idle buffers
 * first. So the memory held here is bounded twice: by `maxIdleBytes` and by
 * the budget.
 *
 * Sizes match exactly (byteLength of the ArrayBuffer): with fixed-size
 * chunking every chunk but the last has one size, so nearly every chunk hits;
 * content-defined chunks rarely repeat a size and mostly allocate, as before.
 */
import { ConfigInvalidError } from '../errors.ts'
import { stripUndefined } from '../net/options.ts'
import type { Lease, MemoryBudget } from './memory-budget.ts'

export interface BufferRecyclerOptions {
  /** Idle bytes kept for reuse, at most (0 turns recycling off). @default 8 MiB */
  maxIdleBytes?: number
}

export const defaultBufferRecyclerOptions: Required<BufferRecyclerOptions> = {
  maxIdleBytes: 8 * 1024 * 1024,
}

export function verifyBufferRecyclerOptions(opts: Required<BufferRecyclerOptions>): void {
  if (!Number.isSafeInteger(opts.maxIdleBytes) || opts.maxIdleBytes < 0) {
    throw new ConfigInvalidError(
      `buffers.maxIdleBytes must be a non-negative integer of bytes, got ${opts.maxIdleBytes}`,
    )
  }
}

interface Idle {
  readonly buf: Uint8Array<ArrayBuffer>
  readonly lease: Lease
}

export class BufferRecycler {
  readonly #budget: MemoryBudget
  readonly #maxIdleBytes: number
  /** Idle buffers by byte length, each list a stack so the warmest is reused first. */
  readonly #idle = new Map<number, Idle[]>()
  #idleBytes = 0
  #hits = 0
  #misses = 0
  #removeReclaimer: (() => void) | undefined

  constructor(budget: MemoryBudget, opts: BufferRecyclerOptions = {}) {
    const o = { ...defaultBufferRecyclerOptions, ...stripUndefined(opts) }
    verifyBufferRecyclerOptions(o)
    this.#budget = budget
    this.#maxIdleBytes = o.maxIdleBytes
    // Idle buffers are the cheapest memory to give back to a waiter.
    this.#removeReclaimer = budget.addReclaimer((needed) => this.#drop(needed))
  }

  /** Bytes held idle (each covered by a lease on the budget). */
  get idleBytes(): number {
    return this.#idleBytes
  }

  /** Takes that reused an idle buffer, and takes that allocated. */
  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses }
  }

  /**
   * A buffer of exactly `length` bytes owning its whole ArrayBuffer (so it can
   * move to a worker). Contents are unspecified. The caller covers it with its
   * own lease.
   */
  take(length: number): Uint8Array<ArrayBuffer> {
    const list = this.#idle.get(length)
    const entry = list?.pop()
    if (entry !== undefined) {
      if (list!.length === 0) this.#idle.delete(length)
      this.#idleBytes -= length
      entry.lease.release()
      this.#hits++
      return entry.buf
    }
    this.#misses++
    // Not zero-filled: every user overwrites the whole buffer before reading it.
    const b = Buffer.allocUnsafeSlow(length)
    return new Uint8Array(b.buffer, 0, length)
  }

  /**
   * Offers a buffer the caller is done with; the caller must not touch it
   * afterwards. Kept only if it spans its whole (non-shared, attached)
   * ArrayBuffer (a view of part of one may share it with bytes someone else
   * owns), fits under `maxIdleBytes`, and the budget has room now.
   */
  give(buf: Uint8Array): void {
    if (this.#removeReclaimer === undefined) return
    const ab = buf.buffer
    if (!(ab instanceof ArrayBuffer) || ab.detached || ab.byteLength === 0) return
    if (buf.byteOffset !== 0 || buf.byteLength !== ab.byteLength) return
    const length = ab.byteLength
    if (this.#idleBytes + length > this.#maxIdleBytes) return
    const lease = this.#budget.tryAcquire(length)
    if (lease === undefined) return
    let list = this.#idle.get(length)
    if (list === undefined) {
      list = []
      this.#idle.set(length, list)
    }
    list.push({ buf: new Uint8Array(ab), lease })
    this.#idleBytes += length
  }

  /** Drops every idle buffer and stops keeping new ones. */
  destroy(): void {
    this.#removeReclaimer?.()
    this.#removeReclaimer = undefined
    this.#drop(Number.POSITIVE_INFINITY)
  }

  #drop(needed: number): number {
    let freed = 0
    for (const [length, list] of this.#idle) {
      while (freed < needed && list.length > 0) {
        list.pop()!.lease.release()
        this.#idleBytes -= length
        freed += length
      }
      if (list.length === 0) this.#idle.delete(length)
      if (freed >= needed) break
    }
    return freed
  }
}
