/**
 * Encoded chunks as sent, shared by every session serving the same content, so that a seeder
 * serving one file to many receivers at once reads and encodes each chunk once per cache window
 * rather than once per receiver.
 *
 * - Keyed by (content id, chunk index, codec policy and zstd level), or by (content id, chunk index)
 *   alone for a chunk that goes plain whatever the policy (incompressible, or policy `none`): the
 *   receivers of random data share entries whatever codec step each one's link chose
 *   (codec-choice.ts). An entry holds the payload exactly as it goes on the wire.
 * - Single flight: a request for a chunk being read and encoded for another session waits for
 *   that one read (under any policy: it then finds the chunk if it went plain, else reads it). If that session ends first (its signal aborts), the waiter reads the chunk itself.
 * - Memory: each entry holds a lease on the engine's budget, taken over from the lease its read
 *   held (MemoryBudget.swap), so the bytes are counted once whoever sends them. Entries go in
 *   least-recently-used order when the cache is over `maxBytes`, and when a waiter on the budget
 *   needs room (the budget's last reclaimer, after idle recycled buffers). An entry being sent is
 *   pinned and never goes. A chunk that finds no room (every entry pinned) is still lent to the
 *   requests waiting for it and to those that come while it is being sent, under its read's own
 *   lease, and goes with its last sender (a transient entry).
 * - The pack (pack-pacer.ts, when the session names its peer): a read that would run a cache
 *   window ahead of another active receiver of the content waits for it; a chunk no other active
 *   receiver still wants is lent without being cached; eviction drops chunks no active receiver
 *   still wants before the least recently used.
 * - Ownership: a cached payload is never given to the buffer recycler, neither while cached nor
 *   after, since a write that failed may leave libp2p holding a view of it (serve-chunks.ts);
 *   nothing writes to it after encoding.
 */
import type { Lease, MemoryBudget } from '../resources/memory-budget.ts'
import { raceAbort } from '../util/abort.ts'
import { type ChunkEncoderContext, type EncodedChunk, readAndEncodeChunk } from './chunk-encoder.ts'
import type { PackPacer } from './pack-pacer.ts'
import { contentKey, type PublishedContent } from './registry.ts'

/** What the serving side's chunk work counts since start (EngineStats.serving.chunks). */
export interface ChunkCacheStats {
  /** Chunks read from disk (and encoded) to be served. */
  readonly reads: number
  /** Chunk frames handed to the network. */
  readonly served: number
  /** Chunks that needed no read of their own: found in the cache or waited for in flight. */
  readonly hits: number
  /** Bytes of encoded chunks cached now (each covered by a lease on the budget). */
  readonly cachedBytes: number
  /** The most `cachedBytes` may be (`serveCacheBytes`). */
  readonly maxBytes: number
  /** Reads that waited for receivers behind to catch up (pack-pacer.ts). */
  readonly paced: number
}

interface Entry {
  readonly key: string
  /** The content id in hex (the pack's key). */
  readonly content: string
  readonly index: number
  readonly codec: EncodedChunk['codec']
  readonly rawLength: number
  readonly payload: Uint8Array
  /** Budget bytes the entry holds (its payload's whole ArrayBuffer). */
  readonly lease: Lease
  /** Senders holding it (lent and not released yet). */
  pins: number
  /** In the cache; false: transient, or evicted while pinned. Its lease goes with the last pin. */
  cached: boolean
}

interface Flight {
  /** The reader's session. */
  readonly signal: AbortSignal
  promise?: Promise<Entry>
}

export class ChunkCache {
  readonly #budget: MemoryBudget
  readonly #maxBytes: number
  /** Cached entries in least-recently-used order (a hit moves its entry to the end). */
  readonly #entries = new Map<string, Entry>()
  /** Entries that found no room in the cache, while still being sent: their memory is held anyway. */
  readonly #transient = new Map<string, Entry>()
  readonly #flights = new Map<string, Flight>()
  readonly #pacer: PackPacer | undefined
  /** The largest entry seen (bytes): the pack's window is the cache's bound in entries of this size. */
  #entryBytes = 0
  #bytes = 0
  #reads = 0
  #served = 0
  #hits = 0

  /** `maxBytes` 0: every request reads its chunk itself (no sharing, no single flight, no pacing). */
  constructor(budget: MemoryBudget, maxBytes: number, pacer?: PackPacer) {
    this.#budget = budget
    this.#maxBytes = maxBytes
    this.#pacer = maxBytes > 0 ? pacer : undefined
    if (maxBytes > 0) budget.setReclaimer((needed) => this.#evict(needed))
  }

  get stats(): ChunkCacheStats {
    return {
      reads: this.#reads,
      served: this.#served,
      hits: this.#hits,
      cachedBytes: this.#bytes,
      maxBytes: this.#maxBytes,
      paced: this.#pacer?.waits ?? 0,
    }
  }

  /** A chunk frame went to the network. */
  chunkServed(): void {
    this.#served++
  }

  /**
   * Chunk `index` of `content` encoded as `ctx.codec` says: from the cache, from a read in flight,
   * or read now. The caller sends it and then calls `release` (and ends the payload only as
   * its `afterSend` says: never a cached one).
   */
  async get(
    ctx: ChunkEncoderContext,
    content: PublishedContent,
    index: number,
    signal: AbortSignal,
  ): Promise<EncodedChunk> {
    if (this.#maxBytes === 0) return readAndEncodeChunk(ctx, content, index, signal, () => this.#reads++)
    const cid = contentKey(content.cid)
    const key = `${cid}:${index}:${ctx.codec}:${ctx.zstdLevel ?? 1}`
    const plain = plainKey(cid, index)
    const peer = this.#pacer === undefined ? undefined : ctx.peer
    // The chunk's count in this peer's share comes first, in the order the session asks, as a
    // read's lease would (a later chunk taking the share's room first would wait for itself:
    // sends go in order); it is kept while this session sends the chunk.
    const charge =
      ctx.hold === undefined
        ? undefined
        : await ctx.hold((await content.reader.entry(index)).length, { signal })
    let paced = peer === undefined
    // The peer counts as active in its pack while this request is answered, however long it waits.
    const turn = peer === undefined ? undefined : this.#pacer!.begin(cid, peer, index)
    try {
      for (;;) {
        const e =
          this.#entries.get(key) ??
          this.#entries.get(plain) ??
          this.#transient.get(key) ??
          this.#transient.get(plain)
        if (e !== undefined) {
          if (e.cached) {
            this.#entries.delete(e.key)
            this.#entries.set(e.key, e)
          }
          this.#hits++
          e.pins++
          turn?.end(true)
          return lend(e, this, charge)
        }
        const flight = this.#flights.get(plain)
        if (flight === undefined && !paced) {
          // Then looks again: a peer behind may have read it meanwhile.
          paced = true
          const length = (await content.reader.entry(index)).length
          const window = Math.max(1, Math.floor(this.#maxBytes / Math.max(this.#entryBytes, length)) - 1)
          await this.#pacer!.pace(cid, peer!, index, window, signal)
          continue
        }
        if (flight === undefined && peer !== undefined && !this.#pacer!.wanted(cid, index, peer)) {
          // No other receiver wants it (one receiver alone, or the last of the pack): read as
          // without a cache, so its buffer goes back to the recycler once sent.
          const chunk = await this.#readOwn(ctx, content, index, signal)
          turn?.end(true)
          const release = once(() => {
            chunk.release()
            charge?.release()
          })
          return { ...chunk, release }
        }
        if (flight === undefined) {
          const e = await this.#read(ctx, content, index, key, cid, peer, signal)
          turn?.end(true)
          return lend(e, this, charge)
        }
        // Waiters take no pin; they look again once the read settles.
        try {
          await raceAbort(flight.promise!, signal)
        } catch (err) {
          if (signal.aborted || !flight.signal.aborted) throw err
          // The reader's session ended, not ours: read it ourselves (or wait for whoever does).
        }
      }
    } catch (err) {
      turn?.end(false)
      charge?.release()
      throw err
    }
  }

  /** Drops the cached chunks of `cid` (its file changed: they must not be served again). */
  forget(cid: Uint8Array): void {
    const prefix = `${contentKey(cid)}:`
    for (const e of [...this.#entries.values()]) if (e.key.startsWith(prefix)) this.#drop(e)
  }

  /** A sender let go of `e`. */
  unpin(e: Entry): void {
    e.pins--
    if (e.pins > 0 || e.cached) return
    if (this.#transient.get(e.key) === e) this.#transient.delete(e.key)
    e.lease.release()
  }

  /** Reads chunk `index` for this request alone, leasing from the engine budget when the peer's share holds its count. */
  #readOwn(ctx: ChunkEncoderContext, content: PublishedContent, index: number, signal: AbortSignal) {
    const readCtx = ctx.hold === undefined ? ctx : { ...ctx, budget: this.#budget }
    return readAndEncodeChunk(readCtx, content, index, signal, () => this.#reads++)
  }

  /**
   * Reads chunk `index` for this request and every one that comes meanwhile. With a share
   * (`ctx.hold`), the request's charge there stands for the read, which leases from the engine
   * budget itself; so a read that others wait for is never one waiting in a peer's share (one
   * that stopped reading must not hold up every other peer).
   */
  async #read(
    ctx: ChunkEncoderContext,
    content: PublishedContent,
    index: number,
    key: string,
    cid: string,
    peer: string | undefined,
    signal: AbortSignal,
  ): Promise<Entry> {
    const readCtx = ctx.hold === undefined ? ctx : { ...ctx, budget: this.#budget }
    const flight: Flight = { signal }
    // One read of a chunk at a time whatever the policy: most chunks a waiter under another
    // policy needs come out plain (incompressible), the same bytes for both.
    const flightKey = plainKey(cid, index)
    this.#flights.set(flightKey, flight)
    flight.promise = (async () => {
      try {
        const chunk = await readAndEncodeChunk(readCtx, content, index, signal, () => this.#reads++)
        // Admission: with the pack known, only a chunk another active receiver still wants is cached.
        const keep = peer === undefined || this.#pacer!.wanted(cid, index, peer)
        return this.#adopt(key, cid, chunk, keep)
      } finally {
        // Before anyone resumes: the waiters look the chunk up again, not at a settled flight.
        this.#flights.delete(flightKey)
      }
    })()
    return flight.promise
  }

  /** Takes `chunk` over as an entry pinned by its reader: cached if `keep` and it fits, else transient. */
  #adopt(policyKey: string, content: string, chunk: EncodedChunk, keep: boolean): Entry {
    // A chunk that goes plain is the same bytes whatever the policy asked (an incompressible
    // chunk under `auto` at any level, or `none`): one entry serves them all.
    const key = chunk.codec === 'none' ? plainKey(content, chunk.index) : policyKey
    const pins = 1
    const old = chunk.lease!
    const bytes = chunk.payload.buffer.byteLength
    this.#entryBytes = Math.max(this.#entryBytes, bytes)
    let lease: Lease | undefined
    // A chunk already held (a guard: flights start before any wait, so reads do not overlap) keeps its first copy.
    const twice = this.#entries.has(key) || this.#transient.has(key)
    if (keep && !twice && bytes <= this.#maxBytes) {
      this.#evict(this.#bytes + bytes - this.#maxBytes)
      if (this.#bytes + bytes <= this.#maxBytes) lease = this.#budget.swap(old, bytes)
    }
    const base = { key, content, index: chunk.index, codec: chunk.codec, rawLength: chunk.rawLength }
    // Checked again after the swap: the waiters it let through may have had cache entries evicted.
    if (lease !== undefined && this.#bytes + bytes <= this.#maxBytes) {
      const entry: Entry = { ...base, payload: chunk.payload, lease, pins, cached: true }
      this.#entries.set(key, entry)
      this.#bytes += bytes
      return entry
    }
    // No room: shared with the requests already waiting and those that come while it is being
    // sent, under the read's own lease, which goes with its last sender.
    const entry: Entry = {
      ...base,
      payload: chunk.payload,
      lease: lease ?? old,
      pins,
      cached: false,
    }
    if (!twice) this.#transient.set(key, entry)
    return entry
  }

  /**
   * Drops unpinned entries, least recently used first, until `needed` bytes are freed; returns
   * the bytes freed. Also the budget's reclaimer, which may run while an entry is being adopted.
   *
   * Measured (bench/fanout, 16 receivers of 64 MiB, interleaved with LRU on one build each):
   * dropping the entry lent most often first, meant to keep what the slowest receivers still
   * need, took 6.55 and 2.36 reads per chunk of the file (16 and 64 MiB budgets) against LRU's
   * 5.45 and 1.00.
   */
  #evict(needed: number): number {
    let freed = 0
    if (needed <= 0) return 0
    const pacer = this.#pacer
    // First the chunks no active receiver still wants (the pack has passed them), then LRU.
    for (const unwanted of pacer === undefined ? [false] : [true, false]) {
      for (const e of this.#entries.values()) {
        if (freed >= needed) return freed
        if (e.pins > 0 || (unwanted && pacer!.wanted(e.content, e.index))) continue
        freed += e.lease.bytes
        this.#drop(e)
      }
    }
    return freed
  }

  #drop(e: Entry): void {
    this.#entries.delete(e.key)
    this.#bytes -= e.lease.bytes
    e.cached = false
    if (e.pins === 0) e.lease.release()
  }
}

/** A view of `e` for one sender: released once (with `charge`, its count in the peer's share), never recycled. */
function lend(e: Entry, cache: ChunkCache, charge?: Lease): EncodedChunk {
  let released = false
  return {
    index: e.index,
    codec: e.codec,
    rawLength: e.rawLength,
    payload: e.payload,
    afterSend: 'keep',
    release: () => {
      if (released) return
      released = true
      cache.unpin(e)
      charge?.release()
    },
  }
}

function once(fn: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}

/** The key of a chunk cached as plain bytes, whichever policy read it. */
function plainKey(cid: string, index: number): string {
  return `${cid}:${index}:plain`
}
