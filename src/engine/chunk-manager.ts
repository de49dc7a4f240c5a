/**
 * Chunk lifecycle bookkeeping and the hot-chunk cache for one engine.
 *
 * Lifecycle: states live in fixed-size pages of one byte per chunk, allocated
 * only where a chunk left `pending`, and freed when every chunk in the page is
 * back to `pending` or the content is forgotten. A 10M-chunk file costs ~10 MB
 * at most, a small one 4 KiB, and no per-chunk objects exist.
 *
 * Cache: the LRU cache holds served payloads under leases on the engine budget,
 * bounded by `cacheLimit` and by budget pressure: it registers the budget's
 * reclaimer, so a waiter makes it evict least recently used entries first.
 * Cache entries and lifecycle states are independent: evicting from the cache
 * does not change a chunk's state.
 */
import { ConfigInvalidError, InternalError, InvalidArgumentError } from '../errors.ts'
import type { Codec } from '../types.ts'
import { CODEC_IDS } from '../types.ts'
import { LruList, type LruNode } from './lru.ts'
import type { Lease, MemoryBudget } from './memory-budget.ts'

export type ChunkState = 'pending' | 'in-flight' | 'verified' | 'written' | 'evicted'

/** Index in this table is the byte stored per chunk; `pending` must stay 0. */
export const CHUNK_STATES: readonly ChunkState[] = ['pending', 'in-flight', 'verified', 'written', 'evicted']

/** Legal `transition` targets from each state. Anything else is a bug and throws `InternalError`. */
export const CHUNK_TRANSITIONS: Readonly<Record<ChunkState, readonly ChunkState[]>> = {
  pending: ['in-flight'],
  'in-flight': ['verified', 'pending'], // pending: failed, to be retried
  verified: ['written', 'evicted'], // evicted: dropped before it was written, must be fetched again
  written: ['evicted'],
  evicted: ['pending', 'in-flight'],
}

const STATE_CODE = new Map<ChunkState, number>(CHUNK_STATES.map((s, i) => [s, i]))
// LEGAL[from * 8 + to] === 1 when the transition is allowed.
const LEGAL = new Uint8Array(8 * 8)
for (const [from, tos] of Object.entries(CHUNK_TRANSITIONS)) {
  for (const to of tos) LEGAL[STATE_CODE.get(from as ChunkState)! * 8 + STATE_CODE.get(to)!] = 1
}

const PAGE_SIZE = 4096

/** A cached chunk as stored on disk / sent on the wire. */
export interface CachedChunk {
  readonly codec: Codec
  /** The bytes as encoded with `codec`. */
  readonly payload: Uint8Array
  /** Length of the plain chunk. */
  readonly rawLength: number
  /** SHA-256 of the plain chunk (its leaf). */
  readonly hash: Uint8Array
}

/** Bytes charged per cache entry on top of payload and hash, for the Map slot, node and objects. */
export const CACHE_ENTRY_OVERHEAD = 128

export interface ChunkManagerOptions {
  /**
   * Bytes the chunk cache may hold (payload + hash + `CACHE_ENTRY_OVERHEAD` per entry),
   * inside the budget. 0 disables the cache.
   * @default floor(budget.limit / 4)
   */
  cacheLimit?: number
}

export function defaultChunkManagerOptions(budget: MemoryBudget): Required<ChunkManagerOptions> {
  return { cacheLimit: Math.floor(budget.limit / 4) }
}

export function verifyChunkManagerOptions(opts: Required<ChunkManagerOptions>, budget: MemoryBudget): void {
  const c = opts.cacheLimit
  if (!Number.isSafeInteger(c) || c < 0 || c > budget.limit) {
    throw new ConfigInvalidError(
      `chunk cache limit must be an integer from 0 to the budget limit ${budget.limit}, got ${c}`,
    )
  }
}

interface StatePage {
  readonly states: Uint8Array
  nonPending: number
}

interface ContentStates {
  readonly pages: Map<number, StatePage>
  /** Chunks per state code (index 0, pending, is not tracked: the chunk count is unknown here). */
  readonly counts: number[]
}

interface CacheEntry extends LruNode {
  readonly key: string
  readonly index: number
  readonly chunk: CachedChunk
  readonly lease: Lease
}

function checkKey(key: string, index: number): void {
  if (typeof key !== 'string')
    throw new InvalidArgumentError(`content key must be a string, got ${typeof key}`)
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new InvalidArgumentError(`chunk index must be a non-negative integer, got ${index}`)
  }
}

export class ChunkManager {
  readonly #budget: MemoryBudget
  readonly #cacheLimit: number
  readonly #contents = new Map<string, ContentStates>()
  #statePages = 0
  readonly #cache = new Map<string, Map<number, CacheEntry>>()
  readonly #lru = new LruList<CacheEntry>()
  #cacheBytes = 0

  constructor(budget: MemoryBudget, opts: ChunkManagerOptions = {}) {
    const o = defaultChunkManagerOptions(budget)
    if (opts.cacheLimit !== undefined) o.cacheLimit = opts.cacheLimit
    verifyChunkManagerOptions(o, budget)
    this.#budget = budget
    this.#cacheLimit = o.cacheLimit
    budget.setReclaimer((needed) => this.#evictLru(needed))
  }

  // ---- lifecycle ----

  /** A chunk's state; chunks never transitioned (or forgotten) are `pending`. */
  state(key: string, index: number): ChunkState {
    checkKey(key, index)
    const page = this.#contents.get(key)?.pages.get(Math.floor(index / PAGE_SIZE))
    return CHUNK_STATES[page === undefined ? 0 : page.states[index % PAGE_SIZE]!]!
  }

  /** Moves a chunk to `to`; throws `InternalError` if `CHUNK_TRANSITIONS` does not allow it. */
  transition(key: string, index: number, to: ChunkState): void {
    checkKey(key, index)
    const toCode = STATE_CODE.get(to)
    if (toCode === undefined) throw new InvalidArgumentError(`unknown chunk state ${String(to)}`)
    let content = this.#contents.get(key)
    const pageNo = Math.floor(index / PAGE_SIZE)
    const slot = index % PAGE_SIZE
    let page = content?.pages.get(pageNo)
    const fromCode = page === undefined ? 0 : page.states[slot]!
    if (LEGAL[fromCode * 8 + toCode] !== 1) {
      throw new InternalError(
        `chunk ${index} of ${key}: illegal transition from ${CHUNK_STATES[fromCode]} to ${to}`,
      )
    }
    if (content === undefined) {
      content = { pages: new Map(), counts: [0, 0, 0, 0, 0] }
      this.#contents.set(key, content)
    }
    if (page === undefined) {
      page = { states: new Uint8Array(PAGE_SIZE), nonPending: 0 }
      content.pages.set(pageNo, page)
      this.#statePages++
    }
    page.states[slot] = toCode
    content.counts[fromCode]!--
    content.counts[toCode]!++
    if (fromCode === 0) page.nonPending++
    if (toCode === 0 && --page.nonPending === 0) {
      content.pages.delete(pageNo)
      this.#statePages--
    }
  }

  /** Chunks of `key` in each state other than `pending` (whose total this manager does not know). */
  counts(key: string): Record<Exclude<ChunkState, 'pending'>, number> {
    const c = this.#contents.get(key)?.counts ?? [0, 0, 0, 0, 0]
    return { 'in-flight': c[1]!, verified: c[2]!, written: c[3]!, evicted: c[4]! }
  }

  /** Drops the lifecycle bookkeeping of `key` (all its chunks read as `pending` again). Not the cache. */
  forget(key: string): void {
    const content = this.#contents.get(key)
    if (content === undefined) return
    this.#statePages -= content.pages.size
    this.#contents.delete(key)
  }

  /** Bytes held by lifecycle bookkeeping (state pages), for tests and limits. */
  get stateBytes(): number {
    return this.#statePages * PAGE_SIZE
  }

  // ---- cache ----

  get cacheLimit(): number {
    return this.#cacheLimit
  }

  /** Bytes charged to cache entries; never above `cacheLimit`. */
  get cacheBytes(): number {
    return this.#cacheBytes
  }

  /** Entries in the cache. */
  get cacheSize(): number {
    return this.#lru.size
  }

  /** The cached chunk, marked most recently used; do not modify its arrays. */
  cacheGet(key: string, index: number): CachedChunk | undefined {
    checkKey(key, index)
    const entry = this.#cache.get(key)?.get(index)
    if (entry === undefined) return undefined
    this.#lru.touch(entry)
    return entry.chunk
  }

  /**
   * Caches a chunk, replacing any entry for the same chunk and evicting least recently
   * used ones to make room. Returns false, without blocking, if it cannot fit within
   * `cacheLimit` and the budget, or if anyone is waiting for budget (they come first).
   * The cache keeps `payload` if it spans its whole ArrayBuffer (do not modify or recycle
   * it afterwards) and copies it otherwise, so it never pins memory it has not charged.
   */
  cachePut(key: string, index: number, chunk: CachedChunk): boolean {
    checkKey(key, index)
    const { codec, payload, rawLength, hash } = chunk
    if (!Object.hasOwn(CODEC_IDS, codec)) throw new InvalidArgumentError(`unknown codec ${String(codec)}`)
    if (!(payload instanceof Uint8Array) || !(hash instanceof Uint8Array)) {
      throw new InvalidArgumentError('cached chunk payload and hash must be Uint8Arrays')
    }
    if (!Number.isSafeInteger(rawLength) || rawLength < 0) {
      throw new InvalidArgumentError(
        `cached chunk rawLength must be a non-negative integer, got ${rawLength}`,
      )
    }
    this.evict(key, index)
    const charge = payload.byteLength + hash.byteLength + CACHE_ENTRY_OVERHEAD
    if (charge > this.#cacheLimit || this.#budget.waiting > 0) return false
    // Only evict what is needed, and only if eviction can actually make it fit.
    if (charge > this.#budget.available + this.#cacheBytes) return false
    while (this.#cacheBytes + charge > this.#cacheLimit || charge > this.#budget.available) {
      const oldest = this.#lru.oldest
      if (oldest === undefined) return false
      this.#remove(oldest)
    }
    const lease = this.#budget.tryAcquire(charge)
    if (lease === undefined) return false
    const whole = payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength
    const stored: CachedChunk = {
      codec,
      payload: whole ? payload : payload.slice(),
      rawLength,
      hash: hash.slice(),
    }
    const entry: CacheEntry = { key, index, chunk: stored, lease, lruPrev: undefined, lruNext: undefined }
    let byIndex = this.#cache.get(key)
    if (byIndex === undefined) this.#cache.set(key, (byIndex = new Map()))
    byIndex.set(index, entry)
    this.#lru.push(entry)
    this.#cacheBytes += charge
    return true
  }

  /** Removes a chunk from the cache (no-op if absent), releasing its lease. */
  evict(key: string, index: number): void {
    checkKey(key, index)
    const entry = this.#cache.get(key)?.get(index)
    if (entry !== undefined) this.#remove(entry)
  }

  /** Empties the cache of `key`, or all of it, releasing the leases. Lifecycle states are kept. */
  clear(key?: string): void {
    // Releasing a lease can run the reclaimer, which removes entries too: re-read each time.
    if (key === undefined) {
      for (let e = this.#lru.oldest; e !== undefined; e = this.#lru.oldest) this.#remove(e)
      return
    }
    for (const entry of [...(this.#cache.get(key)?.values() ?? [])]) this.#remove(entry)
  }

  /** Clears the cache, forgets all states and unregisters the budget reclaimer. */
  destroy(): void {
    this.clear()
    this.#contents.clear()
    this.#statePages = 0
    this.#budget.setReclaimer(undefined)
  }

  #remove(entry: CacheEntry): void {
    const byIndex = this.#cache.get(entry.key)
    if (byIndex?.get(entry.index) !== entry) return // already removed by a re-entrant reclaim
    byIndex.delete(entry.index)
    if (byIndex.size === 0) this.#cache.delete(entry.key)
    this.#lru.remove(entry)
    this.#cacheBytes -= entry.lease.bytes
    entry.lease.release()
  }

  #evictLru(needed: number): number {
    let freed = 0
    while (freed < needed) {
      const oldest = this.#lru.oldest
      if (oldest === undefined) break
      freed += oldest.lease.bytes
      this.#remove(oldest)
    }
    return freed
  }
}
