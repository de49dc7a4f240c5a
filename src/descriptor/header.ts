/**
 * The descriptor header: what a content id names. Versioned binary, big-endian:
 *
 * | field          | bytes | notes                                                   |
 * |----------------|-------|---------------------------------------------------------|
 * | magic          | 4     | "HAUL"                                                  |
 * | version        | 1     | 1; anything else is UnsupportedVersionError             |
 * | chunking kind  | 1     | 0 fixed, 1 cdc                                          |
 * | params         | 4/12  | fixed: size u32; cdc: min u32, avg u32, max u32         |
 * | total size     | 8     | u64, at most 2^53 - 1                                   |
 * | leaf count     | 8     | u64                                                     |
 * | page size      | 4     | u32, leaves per page, power of two in [16, 65536]       |
 * | Merkle root    | 32    | root over the leaf nodes (see src/merkle/tree.ts)       |
 *
 * 62 bytes (fixed) or 70 bytes (cdc). Content id = SHA-256(encoded header), so
 * the id commits to size, chunking, leaf count, page size and root together.
 * Decoding is strict: exact length, sane parameters, and a leaf count that the
 * size and chunking allow (fixed: exactly ceil(size / chunk); cdc: between
 * ceil(size / max) and the count that min-size chunks plus one short tail give).
 */
import { DescriptorInvalidError, UnsupportedVersionError } from '../errors.ts'
import { HASH_SIZE, sha256 } from '../merkle/hash.ts'
import { type ChunkingParams, KiB, MiB } from '../types.ts'

export const HEADER_MAGIC = Uint8Array.of(0x48, 0x41, 0x55, 0x4c) // "HAUL"
export const DESCRIPTOR_VERSION = 1
export const CHUNKING_KIND_FIXED = 0
export const CHUNKING_KIND_CDC = 1
export const FIXED_HEADER_SIZE = 4 + 1 + 1 + 4 + 8 + 8 + 4 + HASH_SIZE
export const CDC_HEADER_SIZE = FIXED_HEADER_SIZE + 8
export const MAX_HEADER_SIZE = CDC_HEADER_SIZE

export const MIN_FIXED_CHUNK_SIZE = 64 * KiB
export const MAX_CHUNK_SIZE = 64 * MiB
/** Smallest CDC minimum: below this a content-defined cut is mostly noise. */
export const MIN_CDC_MIN_SIZE = 64
export const MIN_PAGE_SIZE = 16
export const MAX_PAGE_SIZE = 65536
export const DEFAULT_PAGE_SIZE = 1024

export interface DescriptorHeader {
  readonly version: number
  readonly chunking: ChunkingParams
  /** Size of the content in bytes. */
  readonly totalSize: number
  readonly leafCount: number
  /** Leaves per page; a power of two. */
  readonly pageSize: number
  /** Merkle root over the leaf nodes, 32 bytes. */
  readonly root: Uint8Array
}

const TWO_POW_32 = 2 ** 32

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < TWO_POW_32
}

/** Why `chunking` is not acceptable, or undefined when it is. */
export function chunkingProblem(chunking: ChunkingParams): string | undefined {
  if (chunking.kind === 'fixed') {
    const { size } = chunking
    if (!isPowerOfTwo(size) || size < MIN_FIXED_CHUNK_SIZE || size > MAX_CHUNK_SIZE) {
      return `fixed chunk size must be a power of two in [64 KiB, 64 MiB], got ${size}`
    }
    return undefined
  }
  if (chunking.kind === 'cdc') {
    const { minSize, avgSize, maxSize } = chunking
    if (![minSize, avgSize, maxSize].every(isU32)) return 'cdc sizes must be u32 integers'
    if (minSize < MIN_CDC_MIN_SIZE) return `cdc min size must be at least ${MIN_CDC_MIN_SIZE}, got ${minSize}`
    if (!(minSize <= avgSize && avgSize <= maxSize)) {
      return `cdc sizes must satisfy min <= avg <= max, got ${minSize}/${avgSize}/${maxSize}`
    }
    if (!isPowerOfTwo(avgSize)) return `cdc avg size must be a power of two, got ${avgSize}`
    if (maxSize > MAX_CHUNK_SIZE) return `cdc max size must be at most 64 MiB, got ${maxSize}`
    return undefined
  }
  return `unknown chunking kind ${(chunking as { kind: unknown }).kind}`
}

export function isValidPageSize(pageSize: number): boolean {
  return isPowerOfTwo(pageSize) && pageSize >= MIN_PAGE_SIZE && pageSize <= MAX_PAGE_SIZE
}

/** Leaves of a file of `size` bytes cut into fixed chunks of `chunkSize`. */
export function fixedLeafCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize)
}

/** Inclusive bounds on the leaf count that `chunking` allows for `size` bytes. */
export function leafCountBounds(chunking: ChunkingParams, size: number): { min: number; max: number } {
  if (size === 0) return { min: 0, max: 0 }
  if (chunking.kind === 'fixed') {
    const n = fixedLeafCount(size, chunking.size)
    return { min: n, max: n }
  }
  // Every chunk but the last is in [min, max]; the last is in [1, max].
  return {
    min: Math.ceil(size / chunking.maxSize),
    max: Math.floor((size - 1) / chunking.minSize) + 1,
  }
}

/** Why `header` is not a valid descriptor header, or undefined. Shared by encode and decode. */
export function headerProblem(header: DescriptorHeader): string | undefined {
  if (header.version !== DESCRIPTOR_VERSION) return `version ${header.version} is not supported`
  const chunkingBad = chunkingProblem(header.chunking)
  if (chunkingBad !== undefined) return chunkingBad
  const { totalSize, leafCount, pageSize, root } = header
  if (!Number.isSafeInteger(totalSize) || totalSize < 0) return `total size ${totalSize} is out of range`
  if (!Number.isSafeInteger(leafCount) || leafCount < 0) return `leaf count ${leafCount} is out of range`
  if (!isValidPageSize(pageSize)) {
    return `page size must be a power of two in [${MIN_PAGE_SIZE}, ${MAX_PAGE_SIZE}], got ${pageSize}`
  }
  if (root.length !== HASH_SIZE) return `root must be ${HASH_SIZE} bytes`
  const { min, max } = leafCountBounds(header.chunking, totalSize)
  if (leafCount < min || leafCount > max) {
    return `${leafCount} leaves cannot cover ${totalSize} bytes with this chunking (allowed ${min}..${max})`
  }
  return undefined
}

export function encodeHeader(header: DescriptorHeader): Uint8Array {
  const problem = headerProblem(header)
  if (problem !== undefined) throw new DescriptorInvalidError(`cannot encode descriptor header: ${problem}`)
  const { chunking } = header
  const out = new Uint8Array(chunking.kind === 'fixed' ? FIXED_HEADER_SIZE : CDC_HEADER_SIZE)
  const view = new DataView(out.buffer)
  out.set(HEADER_MAGIC, 0)
  view.setUint8(4, header.version)
  let p = 6
  if (chunking.kind === 'fixed') {
    view.setUint8(5, CHUNKING_KIND_FIXED)
    view.setUint32(p, chunking.size)
    p += 4
  } else {
    view.setUint8(5, CHUNKING_KIND_CDC)
    view.setUint32(p, chunking.minSize)
    view.setUint32(p + 4, chunking.avgSize)
    view.setUint32(p + 8, chunking.maxSize)
    p += 12
  }
  view.setBigUint64(p, BigInt(header.totalSize))
  view.setBigUint64(p + 8, BigInt(header.leafCount))
  view.setUint32(p + 16, header.pageSize)
  out.set(header.root, p + 20)
  return out
}

function readU64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DescriptorInvalidError(`descriptor ${what} is too large`)
  return Number(v)
}

/** Strict decode; the returned header owns its bytes (no view into `bytes`). */
export function decodeHeader(bytes: Uint8Array): DescriptorHeader {
  if (bytes.length < 6)
    throw new DescriptorInvalidError(`descriptor header truncated (${bytes.length} bytes)`)
  for (let i = 0; i < HEADER_MAGIC.length; i++) {
    if (bytes[i] !== HEADER_MAGIC[i]) throw new DescriptorInvalidError('not a haul descriptor (bad magic)')
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = view.getUint8(4)
  if (version !== DESCRIPTOR_VERSION) {
    throw new UnsupportedVersionError(
      `descriptor format version ${version} is not supported (this haul reads version ${DESCRIPTOR_VERSION}); upgrade haul`,
    )
  }
  const kind = view.getUint8(5)
  let expected: number
  if (kind === CHUNKING_KIND_FIXED) expected = FIXED_HEADER_SIZE
  else if (kind === CHUNKING_KIND_CDC) expected = CDC_HEADER_SIZE
  else throw new DescriptorInvalidError(`unknown chunking kind ${kind}`)
  if (bytes.length !== expected) {
    throw new DescriptorInvalidError(`descriptor header must be ${expected} bytes, got ${bytes.length}`)
  }
  let p = 6
  let chunking: ChunkingParams
  if (kind === CHUNKING_KIND_FIXED) {
    chunking = { kind: 'fixed', size: view.getUint32(p) }
    p += 4
  } else {
    chunking = {
      kind: 'cdc',
      minSize: view.getUint32(p),
      avgSize: view.getUint32(p + 4),
      maxSize: view.getUint32(p + 8),
    }
    p += 12
  }
  const header: DescriptorHeader = {
    version,
    chunking,
    totalSize: readU64(view, p, 'total size'),
    leafCount: readU64(view, p + 8, 'leaf count'),
    pageSize: view.getUint32(p + 16),
    root: new Uint8Array(bytes.subarray(p + 20, p + 20 + HASH_SIZE)),
  }
  const problem = headerProblem(header)
  if (problem !== undefined) throw new DescriptorInvalidError(`invalid descriptor header: ${problem}`)
  return header
}

/** Content id: SHA-256 of the encoded header. */
export function contentId(headerBytes: Uint8Array): Uint8Array {
  return sha256(headerBytes)
}

/** Number of pages of a header's leaf table. */
export function pageCountOf(header: Pick<DescriptorHeader, 'leafCount' | 'pageSize'>): number {
  return Math.ceil(header.leafCount / header.pageSize)
}

/** Leaf index range [start, end) of page `pageIndex`. */
export function pageLeafRange(
  header: Pick<DescriptorHeader, 'leafCount' | 'pageSize'>,
  pageIndex: number,
): { start: number; end: number } {
  const start = pageIndex * header.pageSize
  return { start, end: Math.min(start + header.pageSize, header.leafCount) }
}
