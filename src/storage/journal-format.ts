import type { FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { InternalError } from '../errors.ts'
import { sha256 } from '../merkle/hash.ts'
import { writeAll } from './write-all.ts'

/**
 * The resume journal's bytes on disk; the write-ahead rule that decides when
 * they are written lives in ./journal.ts.
 *
 * Layout, all blocks BLOCK (4 KiB) bytes, big-endian:
 *   block 0            superblock: magic, version, leaf count, page geometry,
 *                      the part file's dev/inode, content id, descriptor header
 *                      bytes, the seal (below), CRC-32 of the block.
 *   block 1 + 2p + s   slot s (0/1) of bitmap page p: magic, page index,
 *                      generation, set-chunk count and bytes, CRC-32, then
 *                      PAGE_BITS bits.
 * A page is written to the slot its next generation selects, alternating, so
 * a torn write can only damage the slot being written: loading picks, per page,
 * the valid slot with the higher generation. A page whose two slots are both
 * invalid is reported, and the caller re-hashes its chunks from the part file.
 */

export const BLOCK = 4096
const SLOT_HEAD = 32
/** Chunks per bitmap page. */
export const PAGE_BITS = (BLOCK - SLOT_HEAD) * 8
export const PAGE_BYTES = BLOCK - SLOT_HEAD

/** Bitmap pages of a journal of `leafCount` chunks. */
export function pageCountOf(leafCount: number): number {
  return Math.ceil(leafCount / PAGE_BITS)
}

const MAGIC = new TextEncoder().encode('HAULJRN1')
const SLOT_MAGIC = 0x4a504731 // "JPG1"
const VERSION = 1
export const MAX_HEADER_BYTES = 256

/** Identity of the part file the journal describes; a different file means the bits say nothing. */
export interface PartIdentity {
  readonly dev: bigint
  readonly ino: bigint
}

/** What the superblock records: the transfer a journal belongs to. */
export interface JournalInit {
  readonly cid: Uint8Array
  readonly headerBytes: Uint8Array
  readonly leafCount: number
  readonly part: PartIdentity
  /**
   * The seal of a clean stop: the part file's mtime and ctime (ns) once its last write was synced
   * and the journal flushed. A part file found with another mtime or ctime was changed after the
   * stop (a tool that puts the mtime back, `touch -r`, still moves the ctime, which only the
   * kernel sets). Absent while a transfer runs (a crash leaves no seal). Offsets 344 (flag: 1
   * mtime, 2 mtime and ctime), 352 and 360 (u64): zeros in journals written before the seal
   * existed, which read as unsealed; flag 1 (before the ctime) reads as an mtime alone.
   */
  readonly sealedPart?: PartStamp | undefined
  /**
   * How far a check after a crash got: every chunk below `through` the journal holds was hashed
   * against the part file while it had the stamp `part` (nothing writes it during a check). A
   * check cut short again resumes there if the part file still has that stamp. Offsets 368
   * (flag), 376, 384 and 392 (u64: through, mtime, ctime).
   */
  readonly checked?: { readonly through: number; readonly part: PartStamp } | undefined
}

/** When the part file last changed, as its inode says. */
export interface PartStamp {
  readonly mtimeNs: bigint
  /** Undefined in a seal written before the ctime was part of it. */
  readonly ctimeNs?: bigint | undefined
}

const SEAL_FLAG_AT = 344
const SEAL_MTIME_AT = 352
const SEAL_CTIME_AT = 360
const CHECKED_FLAG_AT = 368
const CHECKED_THROUGH_AT = 376
const CHECKED_MTIME_AT = 384
const CHECKED_CTIME_AT = 392

/** One bitmap page as a slot holds it. */
export interface SlotContents {
  readonly gen: number
  readonly chunks: number
  readonly bytes: number
  readonly bits: Uint8Array
}

export function encodeSuperblock(init: JournalInit & { readonly pageCount: number }): Uint8Array {
  const b = new Uint8Array(BLOCK)
  const v = new DataView(b.buffer)
  b.set(MAGIC, 0)
  v.setUint32(8, VERSION)
  v.setUint32(12, BLOCK)
  v.setBigUint64(16, BigInt(init.leafCount))
  v.setUint32(24, PAGE_BITS)
  v.setUint32(28, init.pageCount)
  v.setBigUint64(32, init.part.dev)
  v.setBigUint64(40, init.part.ino)
  b.set(init.cid, 48)
  v.setUint16(80, init.headerBytes.length)
  b.set(init.headerBytes, 82)
  const seal = init.sealedPart
  if (seal !== undefined) {
    b[SEAL_FLAG_AT] = seal.ctimeNs === undefined ? 1 : 2
    v.setBigUint64(SEAL_MTIME_AT, seal.mtimeNs)
    if (seal.ctimeNs !== undefined) v.setBigUint64(SEAL_CTIME_AT, seal.ctimeNs)
  }
  const checked = init.checked
  if (checked !== undefined && checked.part.ctimeNs !== undefined) {
    b[CHECKED_FLAG_AT] = 1
    v.setBigUint64(CHECKED_THROUGH_AT, BigInt(checked.through))
    v.setBigUint64(CHECKED_MTIME_AT, checked.part.mtimeNs)
    v.setBigUint64(CHECKED_CTIME_AT, checked.part.ctimeNs)
  }
  v.setUint32(BLOCK - 4, crc32(b.subarray(0, BLOCK - 4)))
  return b
}

/** The superblock's fields, or why it cannot be trusted. */
export function parseSuperblock(b: Uint8Array): (JournalInit & { leafCount: number }) | string {
  const v = new DataView(b.buffer, b.byteOffset, BLOCK)
  for (let i = 0; i < MAGIC.length; i++) if (b[i] !== MAGIC[i]) return 'not a haul journal (bad magic)'
  if (v.getUint32(BLOCK - 4) !== crc32(b.subarray(0, BLOCK - 4))) return 'superblock checksum mismatch'
  if (v.getUint32(8) !== VERSION) return `journal version ${v.getUint32(8)} is not supported`
  if (v.getUint32(12) !== BLOCK || v.getUint32(24) !== PAGE_BITS) return 'unexpected page geometry'
  const leafCount = Number(v.getBigUint64(16))
  if (!Number.isSafeInteger(leafCount) || v.getUint32(28) !== pageCountOf(leafCount)) {
    return 'leaf count and page count disagree'
  }
  const headerLen = v.getUint16(80)
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES) return `header length ${headerLen} out of range`
  const cid = b.slice(48, 80)
  const headerBytes = b.slice(82, 82 + headerLen)
  if (!Buffer.from(sha256(headerBytes)).equals(cid)) return 'header bytes do not hash to the content id'
  const part = { dev: v.getBigUint64(32), ino: v.getBigUint64(40) }
  const flag = b[SEAL_FLAG_AT]
  const sealedPart =
    flag === 1 || flag === 2
      ? {
          mtimeNs: v.getBigUint64(SEAL_MTIME_AT),
          ...(flag === 2 ? { ctimeNs: v.getBigUint64(SEAL_CTIME_AT) } : {}),
        }
      : undefined
  const checked =
    b[CHECKED_FLAG_AT] === 1
      ? {
          through: Math.min(leafCount, Number(v.getBigUint64(CHECKED_THROUGH_AT))),
          part: { mtimeNs: v.getBigUint64(CHECKED_MTIME_AT), ctimeNs: v.getBigUint64(CHECKED_CTIME_AT) },
        }
      : undefined
  return { cid, headerBytes, leafCount, part, sealedPart, checked }
}

/** Writes page `p` at generation `gen` into `out` (one BLOCK); `page.bits` is the page's PAGE_BYTES. */
export function encodeSlot(
  p: number,
  gen: number,
  page: { readonly chunks: number; readonly bytes: number; readonly bits: Uint8Array },
  out: Uint8Array,
): void {
  const v = new DataView(out.buffer, out.byteOffset, BLOCK)
  v.setUint32(0, SLOT_MAGIC)
  v.setUint32(4, p)
  v.setBigUint64(8, BigInt(gen))
  v.setBigUint64(16, BigInt(page.bytes))
  v.setUint32(24, page.chunks)
  out.set(page.bits, SLOT_HEAD)
  v.setUint32(28, slotCrc(out))
}

/** Chunk range [start, end) of bitmap page `p` in a journal of `leafCount` chunks. */
export function pageRange(p: number, leafCount: number): { start: number; end: number } {
  return { start: p * PAGE_BITS, end: Math.min(leafCount, (p + 1) * PAGE_BITS) }
}

/** A slot's contents if it is whole and consistent, else undefined. */
function decodeSlot(p: number, slot: Uint8Array, leafCount: number): SlotContents | undefined {
  const v = new DataView(slot.buffer, slot.byteOffset, BLOCK)
  if (v.getUint32(0) !== SLOT_MAGIC || v.getUint32(4) !== p || v.getUint32(28) !== slotCrc(slot)) {
    return undefined
  }
  const gen = Number(v.getBigUint64(8))
  const bytes = Number(v.getBigUint64(16))
  const chunks = v.getUint32(24)
  const bits = slot.subarray(SLOT_HEAD, BLOCK)
  // The count must match the bits, and no bit may name a chunk past the end.
  const { start, end } = pageRange(p, leafCount)
  let count = 0
  for (let k = 0; k < PAGE_BYTES; k++) count += popcount8(bits[k]!)
  for (let i = end - start; i < PAGE_BITS; i++) if ((bits[i >>> 3]! & (1 << (i & 7))) !== 0) return undefined
  if (count !== chunks || !Number.isSafeInteger(gen) || !Number.isSafeInteger(bytes)) return undefined
  return { gen, chunks, bytes, bits }
}

/** A new journal's bytes: the superblock, then both slots of every page at generation 0, empty. */
export async function writeEmptyJournal(
  fh: FileHandle,
  init: JournalInit & { readonly pageCount: number },
): Promise<void> {
  await writeAll(fh, encodeSuperblock(init), 0, 'a new journal')
  // Written in runs to keep the buffer small.
  const empty = { chunks: 0, bytes: 0, bits: new Uint8Array(PAGE_BYTES) }
  const run = 64
  for (let p = 0; p < init.pageCount; p += run) {
    const n = Math.min(run, init.pageCount - p)
    const buf = new Uint8Array(n * 2 * BLOCK)
    for (let k = 0; k < n; k++) {
      encodeSlot(p + k, 0, empty, buf.subarray(2 * k * BLOCK, (2 * k + 1) * BLOCK))
      encodeSlot(p + k, 0, empty, buf.subarray((2 * k + 1) * BLOCK, (2 * k + 2) * BLOCK))
    }
    await writeAll(fh, buf, slotOffset(p, 0), 'a new journal')
  }
}

/**
 * Reads both slots of every page, in runs, and hands `use` each page's valid slot with the
 * higher generation, or undefined when both are invalid. `best.bits` is only valid during the call.
 */
export async function readPages(
  fh: FileHandle,
  leafCount: number,
  pageCount: number,
  use: (page: number, best: SlotContents | undefined) => void,
): Promise<void> {
  const run = 64
  const buf = new Uint8Array(run * 2 * BLOCK)
  for (let p = 0; p < pageCount; p += run) {
    const n = Math.min(run, pageCount - p)
    const got = await readAll(fh, buf.subarray(0, n * 2 * BLOCK), slotOffset(p, 0))
    if (got < n * 2 * BLOCK) throw new InternalError('journal shrank while it was read')
    for (let k = 0; k < n; k++) {
      const page = p + k
      const a = decodeSlot(page, buf.subarray(2 * k * BLOCK, (2 * k + 1) * BLOCK), leafCount)
      const b = decodeSlot(page, buf.subarray((2 * k + 1) * BLOCK, (2 * k + 2) * BLOCK), leafCount)
      use(page, a === undefined ? b : b === undefined ? a : a.gen >= b.gen ? a : b)
    }
  }
}

export function slotOffset(page: number, slot: number): number {
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

/** Reads until `buf` is full or the file ends; returns the bytes read. */
export async function readAll(fh: FileHandle, buf: Uint8Array, at: number): Promise<number> {
  let done = 0
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, at + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}
