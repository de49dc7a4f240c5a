/**
 * Leaf-table rows and pages. A row is offset u64 BE, length u32 BE, chunk hash
 * 32 bytes (44 bytes, the same bytes a leaf node hashes after its 0x00 prefix).
 * Page p holds rows [p*P, min((p+1)*P, n)); on the wire and on disk a page is
 * its rows back to back, nothing else: the count is known from the header.
 */
import { DescriptorInvalidError, InvalidArgumentError } from '../errors.ts'
import { HASH_SIZE, LEAF_ENTRY_SIZE } from '../merkle/hash.ts'
import type { LeafEntry } from '../types.ts'
import type { DescriptorHeader } from './header.ts'

export const ROW_SIZE = LEAF_ENTRY_SIZE
const TWO_POW_32 = 2 ** 32
/** Offsets above this do not fit a JS number exactly; the high word is capped accordingly. */
const MAX_OFFSET_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / TWO_POW_32)

/** Writes `entry` as a row at `at` in `out`. */
export function writeRow(out: Uint8Array, at: number, entry: LeafEntry): void {
  const { offset, length, hash } = entry
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`bad leaf offset ${offset}`)
  if (!Number.isInteger(length) || length <= 0 || length >= TWO_POW_32) {
    throw new InvalidArgumentError(`leaf length must be a positive u32, got ${length}`)
  }
  if (hash.length !== HASH_SIZE) throw new InvalidArgumentError(`leaf hash must be ${HASH_SIZE} bytes`)
  // Byte writes rather than a DataView per row: the writer calls this millions of times.
  const high = Math.floor(offset / TWO_POW_32)
  const low = offset >>> 0
  out[at] = high >>> 24
  out[at + 1] = high >>> 16
  out[at + 2] = high >>> 8
  out[at + 3] = high
  out[at + 4] = low >>> 24
  out[at + 5] = low >>> 16
  out[at + 6] = low >>> 8
  out[at + 7] = low
  out[at + 8] = length >>> 24
  out[at + 9] = length >>> 16
  out[at + 10] = length >>> 8
  out[at + 11] = length
  out.set(hash, at + 12)
}

export function encodeRow(entry: LeafEntry): Uint8Array {
  const out = new Uint8Array(ROW_SIZE)
  writeRow(out, 0, entry)
  return out
}

export function encodePage(entries: readonly LeafEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * ROW_SIZE)
  entries.forEach((e, i) => {
    writeRow(out, i * ROW_SIZE, e)
  })
  return out
}

/**
 * Decodes the row at byte `at` of `bytes`; its hash is a view into `bytes`.
 * Throws DescriptorInvalidError for a zero length or an end beyond 2^53 - 1.
 */
export function decodeRow(bytes: Uint8Array, at: number): LeafEntry {
  if (!Number.isSafeInteger(at) || at < 0 || at + ROW_SIZE > bytes.length) {
    throw new InvalidArgumentError(`no complete row at byte ${at}`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, ROW_SIZE)
  const high = view.getUint32(0)
  if (high > MAX_OFFSET_HIGH) throw new DescriptorInvalidError(`row at byte ${at}: offset is too large`)
  const offset = high * TWO_POW_32 + view.getUint32(4)
  const length = view.getUint32(8)
  if (length === 0) throw new DescriptorInvalidError(`row at byte ${at}: zero-length chunk`)
  if (!Number.isSafeInteger(offset + length))
    throw new DescriptorInvalidError(`row at byte ${at}: end is too large`)
  return { offset, length, hash: bytes.subarray(at + 12, at + ROW_SIZE) }
}

/**
 * Strict page decode: exactly `expectedCount` rows, positive lengths, rows
 * contiguous, first offset as expected when given. The entries' hashes are
 * views into one private copy of `bytes`, never into the caller's buffer.
 */
export function decodePage(
  bytes: Uint8Array,
  expectedCount: number,
  expectedFirstOffset?: number,
): LeafEntry[] {
  if (!Number.isSafeInteger(expectedCount) || expectedCount < 0) {
    throw new InvalidArgumentError(`expectedCount must be a non-negative integer, got ${expectedCount}`)
  }
  if (bytes.length !== expectedCount * ROW_SIZE) {
    throw new DescriptorInvalidError(
      `page must be ${expectedCount} rows (${expectedCount * ROW_SIZE} bytes), got ${bytes.length} bytes`,
    )
  }
  const own = new Uint8Array(bytes) // a copy even when bytes is a Buffer
  const entries: LeafEntry[] = []
  let expectedOffset = expectedFirstOffset
  for (let i = 0; i < expectedCount; i++) {
    const entry = decodeRow(own, i * ROW_SIZE)
    if (expectedOffset !== undefined && entry.offset !== expectedOffset) {
      throw new DescriptorInvalidError(`row ${i}: offset ${entry.offset}, expected ${expectedOffset}`)
    }
    entries.push(entry)
    expectedOffset = entry.offset + entry.length
  }
  return entries
}

/**
 * Checks what the chunking rules say about rows [firstIndex, firstIndex + entries.length)
 * of a table described by `header` (entries must already be contiguous, as
 * decodePage returns them). Fixed: every offset is i*size, every length is size
 * but the last. CDC: lengths <= max and >= min except the last, the first offset
 * is reachable with firstIndex chunks, and the bytes after the page fit the
 * leaves after it. Throws DescriptorInvalidError.
 */
export function checkRows(header: DescriptorHeader, firstIndex: number, entries: readonly LeafEntry[]): void {
  const { chunking, leafCount: n, totalSize } = header
  if (entries.length === 0) return
  const lastIndex = firstIndex + entries.length - 1
  if (lastIndex >= n) throw new DescriptorInvalidError(`rows beyond leaf ${n - 1}`)
  const last = entries[entries.length - 1]!
  const end = last.offset + last.length
  if (end > totalSize) throw new DescriptorInvalidError(`rows end at ${end}, past the size ${totalSize}`)
  if (lastIndex === n - 1 && end !== totalSize) {
    throw new DescriptorInvalidError(`last leaf ends at ${end}, the size is ${totalSize}`)
  }
  if (chunking.kind === 'fixed') {
    const size = chunking.size
    for (let k = 0; k < entries.length; k++) {
      const i = firstIndex + k
      const e = entries[k]!
      const length = i === n - 1 ? totalSize - i * size : size
      if (e.offset !== i * size || e.length !== length) {
        throw new DescriptorInvalidError(`leaf ${i} is not chunk ${i} of a ${size}-byte fixed chunking`)
      }
    }
    return
  }
  const { minSize, maxSize } = chunking
  for (let k = 0; k < entries.length; k++) {
    const i = firstIndex + k
    const { length } = entries[k]!
    if (length > maxSize || (i < n - 1 && length < minSize)) {
      throw new DescriptorInvalidError(`leaf ${i} has length ${length}, outside cdc [${minSize}, ${maxSize}]`)
    }
  }
  const first = entries[0]!.offset
  if (first < firstIndex * minSize || first > firstIndex * maxSize) {
    throw new DescriptorInvalidError(`leaf ${firstIndex} cannot start at ${first} with this cdc chunking`)
  }
  const leavesAfter = n - 1 - lastIndex
  const bytesAfter = totalSize - end
  if (
    leavesAfter > 0 &&
    (bytesAfter < (leavesAfter - 1) * minSize + 1 || bytesAfter > leavesAfter * maxSize)
  ) {
    throw new DescriptorInvalidError(`${leavesAfter} leaves cannot cover the last ${bytesAfter} bytes`)
  }
}
