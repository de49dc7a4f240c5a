import { constants } from 'node:fs'
import { type FileHandle, open, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { crc32 } from 'node:zlib'
import { BudgetExceededError, ConfigInvalidError, InternalError } from '../errors.ts'
import { sha256 } from '../merkle/hash.ts'
import { fsError } from './fs-errors.ts'

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
 * Layout, all blocks BLOCK (4 KiB) bytes, big-endian:
 *   block 0            superblock: magic, version, leaf count, page geometry,
 *                      the part file's dev/inode, content id, descriptor header
 *                      bytes, CRC-32 of the block.
 *   block 1 + 2p + s   slot s (0/1) of bitmap page p: magic, page index,
 *                      generation, set-chunk count and bytes, CRC-32, then
 *                      PAGE_BITS bits.
 * A page is written to the slot its next generation selects, alternating, so
 * a torn write can only damage the slot being written: loading picks, per page,
 * the valid slot with the higher generation. A page whose two slots are both
 * invalid is reported, and the caller re-hashes its chunks from the part file.
 * The file is built under a temporary name and renamed into place, so a journal
 * that exists is whole; its slots are real zeros (not holes), so flushing never
 * allocates blocks on a full disk.
 *
 * Cost: memory leafCount/8 bytes (1.2 MiB for 10M chunks, 10 TiB at 1 MiB) plus
 * the chunks written since the last flush; disk 4 KiB + leafCount/4 bytes.
 * Pages keep a flush proportional to what changed (a transfer moves through
 * the file in order, so one or two pages), not to the file's size.
 */

export interface JournalOptions {
  /**
   * Keep a resume journal. Off: nothing is synced before the end, and a
   * fetch that finds `<dest>.part` re-hashes it against the leaves instead.
   * @default true
   */
  enabled: boolean
  /**
   * Chunk bytes written but not yet synced that trigger a flush (fdatasync the
   * part file, then write and fdatasync the journal). With the fetch window
   * this bounds what a crash re-downloads: at most
   * flushBytes + fetch.windowBytes + one chunk.
   * @default 32 MiB
   */
  flushBytes: number
  /** A flush also happens once this long has passed since the last one (checked as chunks land). @default 2_000 */
  flushIntervalMs: number
  /**
   * Transfers of at most this many bytes keep no journal file: resuming one re-hashes its
   * part file against the verified leaves instead (at most this many bytes, milliseconds).
   * Spares a small transfer creating, syncing and deleting a second file (measured: most of
   * its disk syncs). 0 journals every transfer.
   * @default 4 MiB
   */
  minBytes: number
  /**
   * Most chunks a journal tracks; a descriptor with more fails with
   * BUDGET_EXCEEDED before anything is allocated. Memory: maxChunks / 8 bytes.
   * @default 2^28 (32 MiB of bitmap: 256 TiB at 1 MiB chunks)
   */
  maxChunks: number
}

export const defaultJournalOptions: Readonly<JournalOptions> = {
  enabled: true,
  flushBytes: 32 * 1024 * 1024,
  flushIntervalMs: 2_000,
  minBytes: 4 * 1024 * 1024,
  maxChunks: 2 ** 28,
}

export function verifyJournalOptions(o: JournalOptions): void {
  if (typeof o.enabled !== 'boolean') throw new ConfigInvalidError('journal.enabled must be true or false')
  for (const k of ['flushBytes', 'flushIntervalMs', 'maxChunks'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) {
      throw new ConfigInvalidError(`journal.${k} must be a whole number >= 1, got ${o[k]}`)
    }
  }
  if (!Number.isSafeInteger(o.minBytes) || o.minBytes < 0) {
    throw new ConfigInvalidError(`journal.minBytes must be a whole number >= 0, got ${o.minBytes}`)
  }
}

export const BLOCK = 4096
const SLOT_HEAD = 32
/** Chunks per bitmap page. */
export const PAGE_BITS = (BLOCK - SLOT_HEAD) * 8
const PAGE_BYTES = BLOCK - SLOT_HEAD
const MAGIC = new TextEncoder().encode('HAULJRN1')
const SLOT_MAGIC = 0x4a504731 // "JPG1"
const VERSION = 1
const MAX_HEADER_BYTES = 256

/** Identity of the part file the journal describes; a different file means the bits say nothing. */
export interface PartIdentity {
  readonly dev: bigint
  readonly ino: bigint
}

export interface JournalInit {
  readonly cid: Uint8Array
  readonly headerBytes: Uint8Array
  readonly leafCount: number
  readonly part: PartIdentity
}

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
  readonly part: PartIdentity
  readonly pageCount: number
  readonly #o: JournalOptions
  #fh: FileHandle | undefined
  readonly #bits: Uint8Array
  readonly #gen: Float64Array
  readonly #pageChunks: Float64Array
  readonly #pageBytes: Float64Array
  readonly #dirty = new Set<number>()
  /** Written, not yet covered by a part-file sync: chunk index → length. */
  #unsynced = new Map<number, number>()
  #unsyncedBytes = 0
  /** Taken by the flush in progress: its part-file sync has not returned yet. */
  #syncing = new Map<number, number>()
  #syncingBytes = 0
  #chunks = 0
  #bytes = 0
  #lastFlush = performance.now()
  #running: Promise<void> | undefined
  #queued: Promise<void> | undefined
  #syncData: (() => Promise<void>) | undefined

  private constructor(path: string | undefined, init: JournalInit, o: JournalOptions, fh?: FileHandle) {
    if (!Number.isSafeInteger(init.leafCount) || init.leafCount < 0 || init.leafCount > o.maxChunks) {
      throw new BudgetExceededError(
        `the content has ${init.leafCount} chunks, more than this receiver tracks (journal.maxChunks = ${o.maxChunks}): raise it`,
      )
    }
    this.path = path
    this.cid = new Uint8Array(init.cid)
    this.headerBytes = new Uint8Array(init.headerBytes)
    this.leafCount = init.leafCount
    this.part = init.part
    this.pageCount = Math.ceil(init.leafCount / PAGE_BITS)
    this.#o = o
    this.#fh = fh
    this.#bits = new Uint8Array(this.pageCount * PAGE_BYTES)
    this.#gen = new Float64Array(this.pageCount)
    this.#pageChunks = new Float64Array(this.pageCount)
    this.#pageBytes = new Float64Array(this.pageCount)
  }

  /** A journal that lives only in memory (journal.enabled = false): same API, nothing persisted. */
  static memory(init: JournalInit, o: JournalOptions): Journal {
    return new Journal(undefined, init, o)
  }

  /** Builds an empty journal at `path` (replacing any), atomically: temp file, fsync, rename, fsync folder. */
  static async create(path: string, init: JournalInit, o: JournalOptions): Promise<Journal> {
    if (init.headerBytes.length > MAX_HEADER_BYTES) throw new InternalError('descriptor header too long')
    const j = new Journal(path, init, o)
    const tmp = `${path}.tmp`
    try {
      const fh = await open(tmp, 'w', 0o644)
      try {
        await writeAll(fh, j.#superblock(), 0)
        // Both slots of every page, gen 0, empty: written in runs to keep the buffer small.
        const run = 64
        for (let p = 0; p < j.pageCount; p += run) {
          const n = Math.min(run, j.pageCount - p)
          const buf = new Uint8Array(n * 2 * BLOCK)
          for (let k = 0; k < n; k++) {
            j.#encodeSlot(p + k, 0, buf.subarray(2 * k * BLOCK, (2 * k + 1) * BLOCK))
            j.#encodeSlot(p + k, 0, buf.subarray((2 * k + 1) * BLOCK, (2 * k + 2) * BLOCK))
          }
          await writeAll(fh, buf, slotOffset(p, 0))
        }
        await fh.datasync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
      await syncDir(dirname(path))
      j.#fh = await open(path, constants.O_RDWR)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw fsError(err, path)
    }
    return j
  }

  /**
   * Reads the journal at `path`. `missing`: no file. `damaged`: the superblock
   * is unreadable, so nothing in the file can be trusted. Pages whose two
   * slots are both invalid come back in `damagedPages` with no bits set.
   */
  static async load(path: string, o: JournalOptions): Promise<JournalLoad> {
    let fh: FileHandle
    try {
      fh = await open(path, constants.O_RDWR)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' }
      throw fsError(err, path)
    }
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
    let n = 0
    for (const c of this.#pageChunks) n += c
    return n
  }

  /** Bytes of chunks written but not yet durable (including those a running flush is syncing). */
  get unsyncedBytes(): number {
    return this.#unsyncedBytes + this.#syncingBytes
  }

  /** True when chunk `i` is verified and written, synced or not: a fetch skips it. */
  has(i: number): boolean {
    return this.#bit(i) || this.#unsynced.has(i) || this.#syncing.has(i)
  }

  /** Chunk range [start, end) of bitmap page `p`. */
  pageRange(p: number): { start: number; end: number } {
    return { start: p * PAGE_BITS, end: Math.min(this.leafCount, (p + 1) * PAGE_BITS) }
  }

  /**
   * Notes that chunk `i` (`length` bytes) was verified and written. Returns a
   * promise (to be awaited: it is the backpressure that bounds unsynced work)
   * when this crossed a flush threshold, undefined otherwise.
   */
  record(i: number, length: number): Promise<void> | undefined {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.leafCount) {
      throw new InternalError(`chunk ${i} is outside the journal (${this.leafCount} chunks)`)
    }
    if (this.has(i)) return undefined
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
    // Counting what a running flush is syncing too: every chunk recorded past the threshold waits,
    // so unsynced chunks whose fetch batch has moved on never exceed flushBytes.
    if (
      this.#unsyncedBytes + this.#syncingBytes >= this.#o.flushBytes ||
      performance.now() - this.#lastFlush >= this.#o.flushIntervalMs
    ) {
      return this.flush()
    }
    return undefined
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

  /** Flushes what can be flushed (errors ignored: the caller is already failing) and closes the file. */
  async close(): Promise<void> {
    if (this.#fh === undefined) return
    await this.flush().catch(() => {})
    const fh = this.#fh
    this.#fh = undefined
    await fh.close().catch(() => {})
  }

  /** Deletes the journal (the transfer completed, or its state is being discarded). */
  async remove(): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close().catch(() => {})
    if (this.path !== undefined) await removeJournal(this.path)
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
    if (this.#dirty.size === 0) return
    const pages = [...this.#dirty].sort((a, b) => a - b)
    const slot = new Uint8Array(BLOCK)
    try {
      for (const p of pages) {
        const gen = this.#gen[p]! + 1
        this.#encodeSlot(p, gen, slot)
        await writeAll(fh, slot, slotOffset(p, gen % 2))
      }
      await fh.datasync()
    } catch (err) {
      // Generations stay: the next flush rewrites the same (maybe torn) slots, never the good ones.
      throw fsError(err, this.path ?? 'journal')
    }
    for (const p of pages) {
      this.#gen[p]! += 1
      this.#dirty.delete(p)
    }
  }

  /** Sets the bits of chunks whose bytes are now durable. */
  #settle(batch: ReadonlyMap<number, number>): void {
    for (const [i, len] of batch) {
      if (this.#bit(i)) continue
      this.#bits[i >>> 3]! |= 1 << (i & 7)
      const p = Math.floor(i / PAGE_BITS)
      this.#pageChunks[p]! += 1
      this.#pageBytes[p]! += len
      this.#dirty.add(p)
    }
  }

  #bit(i: number): boolean {
    return i >= 0 && i < this.leafCount && (this.#bits[i >>> 3]! & (1 << (i & 7))) !== 0
  }

  #superblock(): Uint8Array {
    const b = new Uint8Array(BLOCK)
    const v = new DataView(b.buffer)
    b.set(MAGIC, 0)
    v.setUint32(8, VERSION)
    v.setUint32(12, BLOCK)
    v.setBigUint64(16, BigInt(this.leafCount))
    v.setUint32(24, PAGE_BITS)
    v.setUint32(28, this.pageCount)
    v.setBigUint64(32, this.part.dev)
    v.setBigUint64(40, this.part.ino)
    b.set(this.cid, 48)
    v.setUint16(80, this.headerBytes.length)
    b.set(this.headerBytes, 82)
    v.setUint32(BLOCK - 4, crc32(b.subarray(0, BLOCK - 4)))
    return b
  }

  #encodeSlot(p: number, gen: number, out: Uint8Array): void {
    const v = new DataView(out.buffer, out.byteOffset, BLOCK)
    v.setUint32(0, SLOT_MAGIC)
    v.setUint32(4, p)
    v.setBigUint64(8, BigInt(gen))
    v.setBigUint64(16, BigInt(this.#pageBytes[p]!))
    v.setUint32(24, this.#pageChunks[p]!)
    out.set(this.#bits.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), SLOT_HEAD)
    v.setUint32(28, slotCrc(out))
  }

  async #readPages(): Promise<number[]> {
    const fh = this.#fh!
    const damaged: number[] = []
    const run = 64
    const buf = new Uint8Array(run * 2 * BLOCK)
    for (let p = 0; p < this.pageCount; p += run) {
      const n = Math.min(run, this.pageCount - p)
      const got = await readAll(fh, buf.subarray(0, n * 2 * BLOCK), slotOffset(p, 0))
      if (got < n * 2 * BLOCK) throw new InternalError('journal shrank while it was read')
      for (let k = 0; k < n; k++) {
        const page = p + k
        const a = this.#decodeSlot(page, buf.subarray(2 * k * BLOCK, (2 * k + 1) * BLOCK))
        const b = this.#decodeSlot(page, buf.subarray((2 * k + 1) * BLOCK, (2 * k + 2) * BLOCK))
        const best = a === undefined ? b : b === undefined ? a : a.gen >= b.gen ? a : b
        if (best === undefined) {
          damaged.push(page)
          continue
        }
        this.#bits.set(best.bits, page * PAGE_BYTES)
        this.#gen[page] = best.gen
        this.#pageChunks[page] = best.chunks
        this.#pageBytes[page] = best.bytes
        this.#chunks += best.chunks
        this.#bytes += best.bytes
      }
    }
    return damaged
  }

  /** A slot's contents if it is whole and consistent, else undefined. */
  #decodeSlot(
    p: number,
    slot: Uint8Array,
  ): { gen: number; chunks: number; bytes: number; bits: Uint8Array } | undefined {
    const v = new DataView(slot.buffer, slot.byteOffset, BLOCK)
    if (v.getUint32(0) !== SLOT_MAGIC || v.getUint32(4) !== p || v.getUint32(28) !== slotCrc(slot)) {
      return undefined
    }
    const gen = Number(v.getBigUint64(8))
    const bytes = Number(v.getBigUint64(16))
    const chunks = v.getUint32(24)
    const bits = slot.subarray(SLOT_HEAD, BLOCK)
    // The count must match the bits, and no bit may name a chunk past the end.
    const { start, end } = this.pageRange(p)
    let count = 0
    for (let k = 0; k < PAGE_BYTES; k++) count += popcount8(bits[k]!)
    for (let i = end - start; i < PAGE_BITS; i++)
      if ((bits[i >>> 3]! & (1 << (i & 7))) !== 0) return undefined
    if (count !== chunks || !Number.isSafeInteger(gen) || !Number.isSafeInteger(bytes)) return undefined
    return { gen, chunks, bytes, bits }
  }
}

/** Deletes a journal and any temporary left by a crash during creation. Missing files are fine. */
export async function removeJournal(path: string): Promise<void> {
  for (const p of [path, `${path}.tmp`]) {
    await unlink(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw fsError(err, p)
    })
  }
}

function parseSuperblock(b: Uint8Array): (JournalInit & { leafCount: number }) | string {
  const v = new DataView(b.buffer, b.byteOffset, BLOCK)
  for (let i = 0; i < MAGIC.length; i++) if (b[i] !== MAGIC[i]) return 'not a haul journal (bad magic)'
  if (v.getUint32(BLOCK - 4) !== crc32(b.subarray(0, BLOCK - 4))) return 'superblock checksum mismatch'
  if (v.getUint32(8) !== VERSION) return `journal version ${v.getUint32(8)} is not supported`
  if (v.getUint32(12) !== BLOCK || v.getUint32(24) !== PAGE_BITS) return 'unexpected page geometry'
  const leafCount = Number(v.getBigUint64(16))
  if (!Number.isSafeInteger(leafCount) || v.getUint32(28) !== Math.ceil(leafCount / PAGE_BITS)) {
    return 'leaf count and page count disagree'
  }
  const headerLen = v.getUint16(80)
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES) return `header length ${headerLen} out of range`
  const cid = b.slice(48, 80)
  const headerBytes = b.slice(82, 82 + headerLen)
  if (!Buffer.from(sha256(headerBytes)).equals(cid)) return 'header bytes do not hash to the content id'
  return { cid, headerBytes, leafCount, part: { dev: v.getBigUint64(32), ino: v.getBigUint64(40) } }
}

function slotOffset(page: number, slot: number): number {
  return BLOCK * (1 + 2 * page + slot)
}

function slotCrc(slot: Uint8Array): number {
  return crc32(slot.subarray(SLOT_HEAD, BLOCK), crc32(slot.subarray(0, 28)))
}

function popcount8(x: number): number {
  x = x - ((x >>> 1) & 0x55)
  x = (x & 0x33) + ((x >>> 2) & 0x33)
  return (x + (x >>> 4)) & 0x0f
}

async function writeAll(fh: FileHandle, buf: Uint8Array, at: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done)
    done += bytesWritten
  }
}

async function readAll(fh: FileHandle, buf: Uint8Array, at: number): Promise<number> {
  let done = 0
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, at + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
