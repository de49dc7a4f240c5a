import { BudgetExceededError, InternalError } from '../errors.ts'
import { JournalBitmap } from './journal-bitmap.ts'
import { JournalFile } from './journal-file.ts'
import { type JournalInit, type PartIdentity, type PartStamp, pageRange } from './journal-format.ts'
import type { JournalOptions } from './journal-options.ts'

export { journalTempPath, removeJournal } from './journal-file.ts'
// What users of the journal also need from its format (./journal-format.ts) and options (./journal-options.ts).
export { BLOCK, type JournalInit, PAGE_BITS, type PartIdentity, type PartStamp } from './journal-format.ts'
export { defaultJournalOptions, type JournalOptions } from './journal-options.ts'

/** A memory journal persists nothing, so it needs no part identity (one fstat less per small transfer). */
export type MemoryJournalInit = Omit<JournalInit, 'part'>

/**
 * DEV NOTES — the resume journal, `<dest>.part.journal`.
 *
 * One bit per chunk: "verified, written to <dest>.part, and that write is on
 * stable storage". Crash safety is write-ahead: a flush first fdatasyncs the
 * part file, only then sets the bits of the chunks written before that sync
 * and writes the bitmap pages that changed, then fdatasyncs the journal. A bit
 * on disk therefore never names bytes that are not on disk. The converse (bytes
 * on disk with no bit) is the work a crash loses; `flushBytes` bounds it.
 *
 * The file holds a superblock and two alternating slots per bitmap page, so a
 * torn write damages at most the slot being written (layout: ./journal-format.ts).
 * The file is built under a temporary name and renamed into place, so a journal
 * that exists is whole; its slots are real zeros (not holes), so flushing never
 * allocates blocks on a full disk (./journal-file.ts). Options: ./journal-options.ts.
 *
 * Cost: memory leafCount/8 bytes (1.2 MiB for 10M chunks, 10 TiB at 1 MiB; the
 * bitmap, ./journal-bitmap.ts) plus the chunks written since the last flush;
 * disk 4 KiB + leafCount/4 bytes.
 * Pages keep a flush proportional to what changed (a transfer moves through
 * the file in order, so one or two pages), not to the file's size.
 */

export type JournalLoad =
  | { readonly status: 'missing' }
  | { readonly status: 'damaged'; readonly detail: string }
  | { readonly status: 'ok'; readonly journal: Journal; readonly damagedPages: readonly number[] }

export function journalPath(dest: string): string {
  return `${dest}.part.journal`
}

/** The durable chunk set of one transfer, and the write-ahead rule that keeps it honest. */
export class Journal {
  readonly cid: Uint8Array
  readonly headerBytes: Uint8Array
  readonly leafCount: number
  /** The part file this journal's bits describe; undefined for a memory journal (never persisted). */
  readonly part: PartIdentity | undefined
  readonly pageCount: number
  readonly #o: JournalOptions
  /** Undefined for a memory journal; kept after close, for remove(). */
  #file: JournalFile | undefined
  #closed = false
  /** The bits that are on disk, or go there at the next flush. */
  readonly #map: JournalBitmap
  /** Written, not yet covered by a part-file sync: chunk index → length. */
  #unsynced = new Map<number, number>()
  #unsyncedBytes = 0
  /** Taken by the flush in progress: its part-file sync has not returned yet. */
  #syncing = new Map<number, number>()
  #syncingBytes = 0
  #chunks = 0
  #bytes = 0
  #lastFlush = performance.now()
  /** A background flush's failure, for the next `record` to report. */
  #failed: unknown
  #running: Promise<void> | undefined
  #queued: Promise<void> | undefined
  #syncData: (() => Promise<void>) | undefined

  private constructor(init: MemoryJournalInit | JournalInit, o: JournalOptions) {
    if (!Number.isSafeInteger(init.leafCount) || init.leafCount < 0 || init.leafCount > o.maxChunks) {
      throw new BudgetExceededError(
        `the content has ${init.leafCount} chunks, more than this receiver tracks (journal.maxChunks = ${o.maxChunks}): raise it`,
      )
    }
    this.cid = new Uint8Array(init.cid)
    this.headerBytes = new Uint8Array(init.headerBytes)
    this.leafCount = init.leafCount
    this.part = 'part' in init ? init.part : undefined
    this.#map = new JournalBitmap(init.leafCount)
    this.pageCount = this.#map.pageCount
    this.#o = o
  }

  /** A journal that lives only in memory (journal.enabled = false): same API, nothing persisted. */
  static memory(init: MemoryJournalInit, o: JournalOptions): Journal {
    return new Journal(init, o)
  }

  /** Builds an empty journal at `path`, replacing any (JournalFile.create). */
  static async create(path: string, init: JournalInit, o: JournalOptions): Promise<Journal> {
    const j = new Journal(init, o)
    j.#file = await JournalFile.create(path, { ...init, pageCount: j.pageCount })
    return j
  }

  /**
   * Reads the journal at `path`. `missing`: no file. `damaged`: the superblock
   * is unreadable, so nothing in the file can be trusted. Pages whose two
   * slots are both invalid come back in `damagedPages` with no bits set.
   * Anything at `path` but one of haul's own files (./safe-open.ts) fails.
   */
  static async load(path: string, o: JournalOptions): Promise<JournalLoad> {
    const opened = await JournalFile.open(path, o.maxChunks)
    if (opened.status !== 'ok') return opened
    try {
      const j = new Journal(opened.init, o)
      j.#file = opened.file
      const damagedPages = await j.#readPages()
      return { status: 'ok', journal: j, damagedPages }
    } catch (err) {
      await opened.file.close()
      throw err
    }
  }

  /** The sync that must complete before any bit is persisted: the part file's fdatasync. */
  attach(syncData: () => Promise<void>): void {
    this.#syncData = syncData
  }

  get persistent(): boolean {
    return this.#file !== undefined
  }

  /** The journal's file while it is open: undefined for a memory journal, and once closed. */
  get #live(): JournalFile | undefined {
    return this.#closed ? undefined : this.#file
  }

  /** Chunks verified and written (durable or not yet synced). */
  get chunks(): number {
    return this.#chunks
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Chunks whose bits are on disk. */
  get durableChunks(): number {
    return this.#map.chunks
  }

  /** Bytes of chunks written but not yet durable (including those a running flush is syncing). */
  get unsyncedBytes(): number {
    return this.#unsyncedBytes + this.#syncingBytes
  }

  /** True when chunk `i` is verified and written, synced or not: a fetch skips it. */
  has(i: number): boolean {
    return this.#map.has(i) || this.#unsynced.has(i) || this.#syncing.has(i)
  }

  /**
   * The runs of durable chunks, as [start, end) ranges in order, at most `maxRuns` of them: the
   * last one spans from its start to the last durable chunk, gaps included, so a journal whose
   * bits alternate cannot make this as long as the file has chunks.
   */
  keptRanges(maxRuns: number): Array<{ start: number; end: number }> {
    return this.#map.keptRanges(maxRuns)
  }

  /** Chunk range [start, end) of bitmap page `p`. */
  pageRange(p: number): { start: number; end: number } {
    return pageRange(p, this.leafCount)
  }

  /**
   * Notes that chunk `i` (`length` bytes) was verified and written. Returns a
   * promise (to be awaited: it is the backpressure that bounds unsynced work)
   * when the bytes not yet synced reach `flushBytes`, undefined otherwise.
   */
  record(i: number, length: number): Promise<void> | undefined {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.leafCount) {
      throw new InternalError(`chunk ${i} is outside the journal (${this.leafCount} chunks)`)
    }
    if (this.has(i)) return undefined
    if (this.#failed !== undefined) {
      // A background flush failed (the disk full, the destination folder moved): the transfer
      // learns it at its next chunk, not at a later flush that might come only at its end.
      const failed = this.#failed
      this.#failed = undefined
      return Promise.reject(failed)
    }
    this.#unsynced.set(i, length)
    this.#unsyncedBytes += length
    this.#chunks++
    this.#bytes += length
    if (this.#live === undefined) {
      this.#settle(this.#unsynced)
      this.#unsynced = new Map()
      this.#unsyncedBytes = 0
      return undefined
    }
    // Counting what a running flush is syncing too: every chunk recorded past the bound waits,
    // so unsynced chunks whose fetch batch has moved on never exceed flushBytes.
    if (this.#unsyncedBytes + this.#syncingBytes >= this.#o.flushBytes) return this.flush()
    // Started early, in the background: a sync took 15-90 ms here, and waiting for it at the
    // bound (when every chunk recorded meanwhile waited for the next one too) stalled the fetch
    // window for ~40 ms every 32 MiB. A failure leaves the chunks unsynced for the next flush,
    // and the next chunk recorded reports it.
    if (
      this.#running === undefined &&
      (this.#unsyncedBytes * 2 >= this.#o.flushBytes ||
        performance.now() - this.#lastFlush >= this.#o.flushIntervalMs)
    ) {
      this.flush().catch((err: unknown) => {
        this.#failed = err
      })
    }
    return undefined
  }

  /**
   * Takes back chunk `i` (`length` bytes), whose bits are on disk: its bytes in the part file
   * turned out not to match (a re-check after a crash). Its page is written at the next flush;
   * until then a crash keeps the old bit, and the next resume checks the chunk again.
   */
  forget(i: number, length: number): void {
    if (!this.#map.has(i) || this.#unsynced.has(i) || this.#syncing.has(i)) {
      throw new InternalError(`chunk ${i} is not a durable chunk of the journal: nothing to forget`)
    }
    this.#map.clear(i, length)
    this.#chunks--
    this.#bytes -= length
  }

  /** Makes every chunk recorded so far durable. Concurrent calls share one pending flush. */
  flush(): Promise<void> {
    if (this.#live === undefined) return Promise.resolve()
    if (this.#queued !== undefined) return this.#queued
    if (this.#running !== undefined) {
      const queued = this.#running
        .catch(() => {})
        .then(() => {
          if (this.#queued === queued) this.#queued = undefined
          return this.#start()
        })
      this.#queued = queued
      return queued
    }
    return this.#start()
  }

  /** The part file's mtime and ctime a clean stop sealed this journal with; undefined when not sealed. */
  get sealedPart(): PartStamp | undefined {
    return this.#file?.sealedPart
  }

  /** Chunk bytes recorded between flushes; also what a check reads between notes (noteChecked). */
  get flushBytes(): number {
    return this.#o.flushBytes
  }

  /** Chunks below `end` the journal holds. */
  chunksBelow(end: number): number {
    return this.#map.chunksBelow(end)
  }

  /**
   * The chunks below this index that the journal holds were checked by an earlier run after a
   * crash, against a part file that still has the stamp `part` now: 0 when none were, or it has
   * another stamp since.
   */
  checkedThrough(part: PartStamp): number {
    const c = this.#file?.checked
    return c !== undefined && c.part.mtimeNs === part.mtimeNs && c.part.ctimeNs === part.ctimeNs
      ? c.through
      : 0
  }

  /**
   * Records that every chunk below `through` the journal holds was checked against the part file
   * with stamp `part`: its bits taken back for the chunks that did not match are made durable
   * first, so a run cut short goes on from there (`checkedThrough`).
   */
  async noteChecked(through: number, part: PartStamp): Promise<void> {
    await this.flush()
    await this.#live?.noteChecked(through, part)
  }

  /**
   * Flushes what can be flushed (errors ignored: the caller is already failing) and closes the
   * file. Given the part file's mtime and ctime after its last write (`partStamp`), a journal whose
   * flush succeeded is sealed with them: a resume then knows exactly whether the part file changed
   * since.
   */
  async close(partStamp?: PartStamp): Promise<void> {
    const file = this.#live
    if (file === undefined) return
    const flushed = await this.flush().then(
      () => true,
      () => false,
    )
    this.#closed = true
    if (flushed && partStamp !== undefined) await file.seal(partStamp).catch(() => {})
    await file.close()
  }

  /** Deletes the journal (the transfer completed, or its state is being discarded). */
  async remove(): Promise<void> {
    this.#closed = true
    await this.#file?.remove()
  }

  #start(): Promise<void> {
    const p = this.#flushOnce().finally(() => {
      if (this.#running === p) this.#running = undefined
    })
    this.#running = p
    return p
  }

  async #flushOnce(): Promise<void> {
    const file = this.#live
    if (file === undefined) return
    const batch = this.#unsynced
    this.#syncing = batch
    this.#syncingBytes = this.#unsyncedBytes
    this.#unsynced = new Map()
    this.#unsyncedBytes = 0
    if (batch.size > 0) {
      if (this.#syncData === undefined) throw new InternalError('journal flushed before attach()')
      try {
        await this.#syncData()
      } catch (err) {
        for (const [i, len] of batch) this.#unsynced.set(i, len)
        this.#unsyncedBytes += this.#syncingBytes
        this.#syncing = new Map()
        this.#syncingBytes = 0
        throw err
      }
      this.#settle(batch)
    }
    this.#syncing = new Map()
    this.#syncingBytes = 0
    this.#lastFlush = performance.now()
    const pages = this.#map.dirtyPages()
    if (pages.length === 0) return
    // Generations stay on failure: the next flush rewrites the same (maybe torn) slots, never the good ones.
    await file.writePages(pages, (p, slot) => this.#map.encodeNext(p, slot))
    this.#map.written(pages)
  }

  /** Sets the bits of chunks whose bytes are now durable. */
  #settle(batch: ReadonlyMap<number, number>): void {
    for (const [i, len] of batch) this.#map.set(i, len)
  }

  async #readPages(): Promise<number[]> {
    const damaged: number[] = []
    await this.#file!.readPages((page, best) => {
      if (best === undefined) {
        damaged.push(page)
        return
      }
      this.#map.load(page, best)
      this.#chunks += best.chunks
      this.#bytes += best.bytes
    })
    return damaged
  }
}
