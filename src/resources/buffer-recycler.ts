/**
 * Keeps chunk buffers that finished their work so the next chunk of the same
 * size reuses the memory instead of allocating.
 *
 * Why: a fresh 1 MiB ArrayBuffer per chunk costs far more than its bytes. On
 * this machine allocating, filling and dropping 512 × 1 MiB buffers takes
 * ~2.1 s of CPU against ~0.5 s when the same buffers are reused (V8 full
 * GCs driven by the external memory, page faults on fresh mappings): about
 * 3 ms per MiB, a third of a transfer's CPU on each side.
 *
 * Unlike LeasedBufferPool (leased-buffer-pool.ts: one size, one pipeline, a
 * lease it holds for every buffer out; see there why there are two), the
 * recycler is one per engine, takes any size, and holds only idle buffers:
 * whoever takes one covers it with its own lease (the fetcher's batch lease,
 * a served chunk's lease). Each idle buffer keeps a lease of its own on the
 * engine's budget, taken without waiting; when the budget has no room the
 * buffer is handed over (below), and a waiter on the budget reclaims idle
 * buffers first. So the memory held here is bounded twice: by `maxIdleBytes` and by
 * the budget.
 *
 * Under contention the budget is spent, so an idle buffer can get no lease of
 * its own; dropping it there makes the next taker allocate the same size
 * again. Measured at 1,000 concurrent transfers (bench/concurrency.ts) with
 * dropping: the receiver reuses 39 of ~8,300 chunk buffers and the sender
 * ~30 %, and the dropped 1 MiB buffers are promoted garbage that V8 frees only
 * at its next full GC (~70 MB of ArrayBuffers above the leased bytes). The
 * budget is also spent, with nobody waiting, when one fetch's window takes all
 * of it (a 16 MiB budget): dropping there allocates chunk after chunk anew,
 * ~3 s more receiver CPU per GiB. So a buffer given back while
 * the budget has no room, or whose idle lease a waiter reclaims, is *handed
 * over*: kept without a lease for the next `take` of its size, whose caller's
 * lease covers it. Handed-over buffers
 * are the one memory outside the budget: at most `maxIdleBytes` (together with
 * the idle ones), and for at most HAND_OVER_MS; then they get a lease or are
 * dropped.
 *
 * Sizes match exactly (byteLength of the ArrayBuffer): with fixed-size
 * chunking every chunk but the last has one size, so nearly every chunk hits;
 * content-defined chunks rarely repeat a size and mostly allocate, as before.
 */
import { engineDefaults } from '../engine/config/resolve.ts'
import { ConfigInvalidError } from '../errors.ts'
import { stripUndefined } from '../net/options.ts'
import type { Lease, MemoryBudget } from './memory-budget.ts'

/** Engine option `buffers`; defaults and ranges: src/engine/config/table.ts. */
export interface BufferRecyclerOptions {
  /**
   * Idle bytes kept for reuse, at most (0 turns recycling off). Includes buffers handed
   * over between owners while the budget has no room, which are not leased: the engine's
   * chunk memory is at most `memoryBudget + maxIdleBytes`.
   */
  maxIdleBytes?: number
}

export const defaultBufferRecyclerOptions: Required<BufferRecyclerOptions> = engineDefaults.buffers

export function verifyBufferRecyclerOptions(opts: Required<BufferRecyclerOptions>): void {
  if (!Number.isSafeInteger(opts.maxIdleBytes) || opts.maxIdleBytes < 0) {
    throw new ConfigInvalidError(
      `buffers.maxIdleBytes must be a non-negative integer of bytes, got ${opts.maxIdleBytes}`,
    )
  }
}

/** How long a handed-over buffer waits for a taker before it needs a lease of its own (or is dropped). */
export const HAND_OVER_MS = 250

interface Handed {
  readonly buf: Uint8Array<ArrayBuffer>
  /** performance.now() when handed over. */
  readonly at: number
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
  /** Handed-over buffers by byte length: no lease, the next taker's covers them. */
  readonly #handed = new Map<number, Handed[]>()
  #handedBytes = 0
  #sweep: NodeJS.Timeout | undefined
  #hits = 0
  #misses = 0
  #freed = 0
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

  /** Bytes handed over between owners: held without a lease for at most HAND_OVER_MS. */
  get handedBytes(): number {
    return this.#handedBytes
  }

  /** Takes that reused an idle buffer, takes that allocated, and retired buffers freed at once. */
  get stats(): { hits: number; misses: number; freed: number } {
    return { hits: this.#hits, misses: this.#misses, freed: this.#freed }
  }

  /**
   * A buffer of exactly `length` bytes owning its whole ArrayBuffer (so it can
   * move to a worker). Contents are unspecified. The caller covers it with its
   * own lease.
   */
  take(length: number): Uint8Array<ArrayBuffer> {
    const handed = popOf(this.#handed, length)
    if (handed !== undefined) {
      this.#handedBytes -= length
      this.#hits++
      return handed.buf
    }
    const entry = popOf(this.#idle, length)
    if (entry !== undefined) {
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
   * owns) and fits under `maxIdleBytes`: with a lease if the budget has room
   * now, else handed over. True when kept.
   */
  give(buf: Uint8Array): boolean {
    if (this.#removeReclaimer === undefined) return false
    const ab = buf.buffer
    if (!(ab instanceof ArrayBuffer) || ab.detached || ab.byteLength === 0) return false
    if (buf.byteOffset !== 0 || buf.byteLength !== ab.byteLength) return false
    const length = ab.byteLength
    if (!this.#makeRoom(length)) return false
    const lease = this.#budget.tryAcquire(length)
    if (lease !== undefined) this.#keep(new Uint8Array(ab), lease)
    else this.#handOver(new Uint8Array(ab))
    return true
  }

  /**
   * Ends a buffer whose whole ArrayBuffer the caller owns, whatever part the view shows, and
   * that nothing reads any more (no write in progress holds it): kept as `give` keeps it, else
   * its memory is returned now (see {@link freeNow}) instead of waiting for the collector.
   */
  retire(buf: Uint8Array): void {
    if (!this.give(buf)) this.free(buf)
  }

  /**
   * Frees now a buffer the caller owns whole and nothing reads any more, never keeping it (an
   * odd-sized one no taker would ask for); counted in `stats.freed`.
   */
  free(buf: Uint8Array): void {
    if (freeNow(buf)) this.#freed++
  }

  /**
   * Makes room for `length` more idle bytes under `maxIdleBytes` by dropping the
   * oldest buffers of the least recently given other sizes (the odd-sized last
   * chunks of files would otherwise fill the room for good and turn every
   * chunk-sized buffer away). False when only buffers of this size are in the way.
   */
  #makeRoom(length: number): boolean {
    if (length > this.#maxIdleBytes) return false
    const excess = this.#idleBytes + this.#handedBytes + length - this.#maxIdleBytes
    // Released after the eviction: a release can run the budget's reclaimers, which edit #idle.
    const released: Lease[] = []
    const idleFreed = evictOthers(this.#idle, length, excess, (e) => released.push(e.lease))
    this.#idleBytes -= idleFreed
    const handedFreed = evictOthers(this.#handed, length, excess - idleFreed, () => {})
    this.#handedBytes -= handedFreed
    for (const lease of released) lease.release()
    return excess - idleFreed - handedFreed <= 0
  }

  #keep(buf: Uint8Array<ArrayBuffer>, lease: Lease): void {
    this.#idleBytes += buf.byteLength
    lastUsed(this.#idle, buf.byteLength).push({ buf, lease })
  }

  /** Keeps `buf` unleased for the next taker of its size (whose lease covers it). */
  #handOver(buf: Uint8Array<ArrayBuffer>): void {
    this.#handedBytes += buf.byteLength
    lastUsed(this.#handed, buf.byteLength).push({ buf, at: performance.now() })
    this.#scheduleSweep(HAND_OVER_MS)
  }

  #scheduleSweep(ms: number): void {
    if (this.#sweep !== undefined) return
    this.#sweep = setTimeout(this.#onSweep, ms)
    this.#sweep.unref()
  }

  /** Hand-overs nobody took within HAND_OVER_MS: a lease of their own if the budget has room, else dropped. */
  readonly #onSweep = (): void => {
    this.#sweep = undefined
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const [size, list] of this.#handed) {
      // Oldest first: each list is in hand-over order (takers pop the newest).
      while (list.length > 0 && now - list[0]!.at >= HAND_OVER_MS) {
        const { buf } = list.shift()!
        this.#handedBytes -= size
        const lease = this.#removeReclaimer === undefined ? undefined : this.#budget.tryAcquire(size)
        if (lease !== undefined) this.#keep(buf, lease)
      }
      if (list.length === 0) this.#handed.delete(size)
      else next = Math.min(next, list[0]!.at + HAND_OVER_MS - now)
    }
    if (next !== Number.POSITIVE_INFINITY) this.#scheduleSweep(Math.max(1, Math.ceil(next)))
  }

  /** Drops every idle buffer and stops keeping new ones. */
  destroy(): void {
    this.#removeReclaimer?.()
    this.#removeReclaimer = undefined
    this.#drop(Number.POSITIVE_INFINITY)
    clearTimeout(this.#sweep)
    this.#sweep = undefined
    this.#handed.clear()
    this.#handedBytes = 0
  }

  /**
   * Releases idle leases for a budget waiter. The buffers are handed over, not
   * dropped: the waiter is about to take buffers of the same size.
   */
  #drop(needed: number): number {
    let freed = 0
    const live = this.#removeReclaimer !== undefined
    for (const [length, list] of this.#idle) {
      while (freed < needed && list.length > 0) {
        const { buf, lease } = list.pop()!
        lease.release()
        this.#idleBytes -= length
        freed += length
        if (live) this.#handOver(buf)
      }
      if (list.length === 0) this.#idle.delete(length)
      if (freed >= needed) break
    }
    return freed
  }
}

/**
 * Returns the memory of `buf`'s ArrayBuffer now by detaching it (every view of it reads as empty
 * from then on). Why: a chunk buffer dropped to the collector stays allocated until V8's next
 * full collection, which the external memory alone triggers late: a receiver that left each
 * decoded zstd chunk to the collector held 9-45 MB of them, and its peak RSS grew with the
 * length of a transfer (docs/BENCHMARKS.md, Memory at any size). Only for memory the caller
 * owns whole: never a view of someone else's buffer, nor one an I/O still uses.
 * False when there was nothing to free (shared, resizable or already detached).
 */
export function freeNow(buf: Uint8Array): boolean {
  const ab = buf.buffer
  if (!(ab instanceof ArrayBuffer) || ab.detached || ab.resizable) return false
  ab.transfer(0)
  return true
}

/** Ends `buf` as {@link BufferRecycler.retire} does; with no recycler, frees it now. */
export function retireBuffer(buffers: BufferRecycler | undefined, buf: Uint8Array): void {
  if (buffers === undefined) freeNow(buf)
  else buffers.retire(buf)
}

/** Frees `buf` now, counted by `buffers` when there is one (see {@link BufferRecycler.free}). */
export function freeBuffer(buffers: BufferRecycler | undefined, buf: Uint8Array): void {
  if (buffers === undefined) freeNow(buf)
  else buffers.free(buf)
}

/** The newest entry of `size` taken out of `map` (its list dropped when emptied). */
function popOf<T>(map: Map<number, T[]>, size: number): T | undefined {
  const list = map.get(size)
  const entry = list?.pop()
  if (list?.length === 0) map.delete(size)
  return entry
}

/**
 * Takes the oldest entries of sizes other than `keep` out of `map`, least recently given sizes
 * first, until `excess` bytes are gone; `onEvict` sees each. Returns the bytes taken.
 */
function evictOthers<T>(
  map: Map<number, T[]>,
  keep: number,
  excess: number,
  onEvict: (e: T) => void,
): number {
  let freed = 0
  for (const [size, list] of map) {
    if (freed >= excess) break
    if (size === keep) continue
    while (freed < excess && list.length > 0) {
      onEvict(list.shift()!)
      freed += size
    }
    if (list.length === 0) map.delete(size)
  }
  return freed
}

/** The list for `size`, moved to the end of the map's order (maps iterate least recently used first). */
function lastUsed<T>(map: Map<number, T[]>, size: number): T[] {
  const list = map.get(size) ?? []
  map.delete(size)
  map.set(size, list)
  return list
}
