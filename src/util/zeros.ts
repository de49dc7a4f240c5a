/**
 * Telling all-zero bytes apart cheaply: a memcmp against a zero block, which stops at the first
 * non-zero byte (~13 GB/s over zeros here, against ~0.5-1.5 GB/s for SHA-256 of the same bytes).
 * Used by worker threads (chunk digests) and the receiver's part file (holes): erasable
 * TypeScript only.
 */

/** 64 KiB of zeros, compared against in slices. Shared: never write to it. */
export const ZERO_BLOCK = new Uint8Array(64 * 1024)

/** True when every byte of `bytes` is 0 (true for an empty array). */
export function isAllZero(bytes: Uint8Array): boolean {
  for (let at = 0; at < bytes.length; at += ZERO_BLOCK.length) {
    const n = Math.min(ZERO_BLOCK.length, bytes.length - at)
    const zeros = n === ZERO_BLOCK.length ? ZERO_BLOCK : ZERO_BLOCK.subarray(0, n)
    if (Buffer.compare(bytes.subarray(at, at + n), zeros) !== 0) return false
  }
  return true
}
