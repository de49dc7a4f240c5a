import { constants } from 'node:fs'
import { type FileHandle, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BudgetExceededError, InternalError } from '../errors.ts'
import { syncDir } from '../util/sync-dir.ts'
import { fsError } from './fs-errors.ts'
import { JournalBitmap } from './journal-bitmap.ts'
import {
  BLOCK,
  encodeSuperblock,
  type JournalInit,
  MAX_HEADER_BYTES,
  type PartIdentity,
  type PartStamp,
  pageRange,
  parseSuperblock,
  readAll,
  readPages,
  slotOffset,
  writeEmptyJournal,
} from './journal-format.ts'
import type { JournalOptions } from './journal-options.ts'
import { entryAt, openOwnFile, removeOwnFile, unlinkEntry } from './safe-open.ts'
import { writeAll } from './write-all.ts'

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
 * allocates blocks on a full disk. Options: ./journal-options.ts.
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
  readonly path: string | undefined
  readonly cid: Uint8Array
  readonly headerBytes: Uint8Array
  readonly leafCount: number
  /** The part file this journal's bits describe; undefined for a memory journal (never persisted). */
  readonly part: PartIdentity | undefined
  readonly pageCount: number
  readonly #o: JournalOptions
  #fh: FileHandle | undefined
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
  /** The seal of the clean stop this journal was loaded with (JournalInit.sealedPart). */
  #sealed: PartStamp | undefined
  /** How far a check after a crash got, and the part file's stamp then (JournalInit.checked). */
  #checked: JournalInit['checked']

  private constructor(
    path: string | undefined,
    init: MemoryJournalInit | JournalInit,
    o: JournalOptions,
    fh?: FileHandle,
  ) {
    if (!Number.isSafeInteger(init.leafCount) || init.leafCount < 0 || init.leafCount > o.maxChunks) {
      throw new BudgetExceededError(
        `the content has ${init.leafCount} chunks, more than this receiver tracks (journal.maxChunks = ${o.maxChunks}): raise it`,
      )
    }
    this.path = path
    this.cid = new Uint8Array(init.cid)
    this.headerBytes = new Uint8Array(init.headerBytes)
    this.leafCount = init.leafCount
    this.part = 'part' in init ? init.part : undefined
    this.#sealed = 'sealedPart' in init ? init.sealedPart : undefined
    this.#checked = 'checked' in init ? init.checked : undefined
    this.#map = new JournalBitmap(init.leafCount)
    this.pageCount = this.#map.pageCount
    this.#o = o
    this.#fh = fh
  }

  /** A journal that lives only in memory (journal.enabled = false): same API, nothing persisted. */
  static memory(init: MemoryJournalInit, o: JournalOptions): Journal {
    return new Journal(undefined, init, o)
  }

  /**
   * Builds an empty journal at `path` (replacing any), atomically: temp file, fsync, rename, fsync
   * folder. The temp file is created anew (O_EXCL): a leftover of a crash is removed first, and
   * an entry planted under its name is refused, never written through.
   */
  static async create(path: string, init: JournalInit, o: JournalOptions): Promise<Journal> {
    // The same bounds load() checks: a journal it would call damaged is never written.
    const h = init.headerBytes.length
    if (h === 0 || h > MAX_HEADER_BYTES) throw new InternalError(`descriptor header of ${h} bytes`)
    if (init.cid.length !== 32) throw new InternalError(`content id of ${init.cid.length} bytes`)
    const j = new Journal(path, init, o)
    const tmp = `${path}.tmp`
    await removeOwnFile(tmp)
    let created = false
    try {
      const fh = await openOwnFile(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL)
      created = true
      try {
        await writeEmptyJournal(fh, { ...init, pageCount: j.pageCount })
        await fh.datasync()
      } finally {
        await fh.close()
      }
      // rename() replaces the entry at `path` and never follows it.
      await rename(tmp, path)
      await syncDir(dirname(path))
      j.#fh = await openOwnFile(path, constants.O_RDWR)
    } catch (err) {
      if (created) await unlink(tmp).catch(() => {})
      throw fsError(err, path)
    }
    return j
  }

  /**
   * Reads the journal at `path`. `missing`: no file. `damaged`: the superblock
   * is unreadable, so nothing in the file can be trusted. Pages whose two
   * slots are both invalid come back in `damagedPages` with no bits set.
   * Anything at `path` but one of haul's own files (./safe-open.ts) fails.
   */
  static async load(path: string, o: JournalOptions): Promise<JournalLoad> {
    if ((await entryAt(path)) === undefined) return { status: 'missing' }
    const fh = await openOwnFile(path, constants.O_RDWR)
    let handedOut = false
    try {
      const size = (await fh.stat()).size
      const sb = new Uint8Array(BLOCK)
      if (size < BLOCK || (await readAll(fh, sb, 0)) < BLOCK)
        return { status: 'damaged', detail: 'superblock truncated' }
      const parsed = parseSuperblock(sb)
      if (typeof parsed === 'string') return { status: 'damaged', detail: parsed }
      if (parsed.leafCount > o.maxChunks) {
        throw new BudgetExceededError(
          `${path} tracks ${parsed.leafCount} chunks, more than journal.maxChunks (${o.maxChunks})`,
        )
      }
      const j = new Journal(path, parsed, o, fh)
      if (size !== slotOffset(j.pageCount, 0)) {
        return { status: 'damaged', detail: `size ${size}, expected ${slotOffset(j.pageCount, 0)}` }
      }
      const damagedPages = await j.#readPages()
      handedOut = true
      return { status: 'ok', journal: j, damagedPages }
    } catch (err) {
      throw fsError(err, path)
    } finally {
      if (!handedOut) await fh.close().catch(() => {})
    }
  }

  /** The sync that must complete before any bit is persisted: the part file's fdatasync. */
  attach(syncData: () => Promise<void>): void {
    this.#syncData = syncData
  }

  get persistent(): boolean {
    return this.path !== undefined
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
    if (this.#fh === undefined) {
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
    if (this.#fh === undefined) return Promise.resolve()
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
    return this.#sealed
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
    const c = this.#checked
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
    const fh = this.#fh
    if (fh === undefined) return
    this.#checked = { through, part }
    await writeAll(fh, this.#superblock(this.#sealed), 0, this.path ?? 'the journal')
    await fh.datasync()
  }

  /**
   * Flushes what can be flushed (errors ignored: the caller is already failing) and closes the
   * file. Given the part file's mtime and ctime after its last write (`partStamp`), a journal whose
   * flush succeeded is sealed with them: a resume then knows exactly whether the part file changed
   * since.
   */
  async close(partStamp?: PartStamp): Promise<void> {
    if (this.#fh === undefined) return
    const flushed = await this.flush().then(
      () => true,
      () => false,
    )
    const fh = this.#fh
    this.#fh = undefined
    if (flushed && partStamp !== undefined && this.part !== undefined) {
      await this.#writeSeal(fh, partStamp).catch(() => {})
    }
    await fh.close().catch(() => {})
  }

  async #writeSeal(fh: FileHandle, partStamp: PartStamp): Promise<void> {
    await writeAll(fh, this.#superblock(partStamp), 0, this.path ?? 'the journal')
    await fh.datasync()
  }

  #superblock(sealedPart: PartStamp | undefined): Uint8Array {
    const init = {
      cid: this.cid,
      headerBytes: this.headerBytes,
      leafCount: this.leafCount,
      part: this.part!,
      pageCount: this.pageCount,
      sealedPart,
      checked: this.#checked,
    }
    return encodeSuperblock(init)
  }

  /** Deletes the journal (the transfer completed, or its state is being discarded). */
  async remove(): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close().catch(() => {})
    // unlink() removes an entry and never follows it: whatever stands there now may go.
    if (this.path !== undefined) for (const p of [this.path, `${this.path}.tmp`]) await unlinkEntry(p)
  }

  #start(): Promise<void> {
    const p = this.#flushOnce().finally(() => {
      if (this.#running === p) this.#running = undefined
    })
    this.#running = p
    return p
  }

  async #flushOnce(): Promise<void> {
    const fh = this.#fh
    if (fh === undefined) return
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
    const slot = new Uint8Array(BLOCK)
    try {
      // The first flush of a resumed transfer drops the seal of the stop before it (the part file
      // has been written since). A crash before this flush leaves a seal its part file no longer
      // matches: the next resume re-hashes the kept chunks, the safe side.
      if (this.#sealed !== undefined) {
        await writeAll(fh, this.#superblock(undefined), 0, this.path ?? 'the journal')
        this.#sealed = undefined
      }
      for (const p of pages) {
        const gen = this.#map.encodeNext(p, slot)
        await writeAll(fh, slot, slotOffset(p, gen % 2), this.path ?? 'the journal')
      }
      await fh.datasync()
    } catch (err) {
      // Generations stay: the next flush rewrites the same (maybe torn) slots, never the good ones.
      throw fsError(err, this.path ?? 'journal')
    }
    this.#map.written(pages)
  }

  /** Sets the bits of chunks whose bytes are now durable. */
  #settle(batch: ReadonlyMap<number, number>): void {
    for (const [i, len] of batch) this.#map.set(i, len)
  }

  async #readPages(): Promise<number[]> {
    const damaged: number[] = []
    await readPages(this.#fh!, this.leafCount, this.pageCount, (page, best) => {
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

/**
 * Deletes a journal and any temporary left by a crash during creation. Missing files are fine;
 * anything there but one of haul's own files is refused (a planted link is the user's to look at).
 */
export async function removeJournal(path: string): Promise<void> {
  for (const p of [path, `${path}.tmp`]) await removeOwnFile(p)
}
