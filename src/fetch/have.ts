import { MAX_HAVE_BITS } from '../protocol/messages.ts'

/** What a peer holds of one content: everything, or the chunks whose bits are set. */
export type Have = 'all' | Bitset

/** A fixed-size bitset, chunk `i` at bit `i & 7` of byte `i >> 3` (the wire's order). */
export class Bitset {
  readonly size: number
  readonly bytes: Uint8Array
  #count = 0

  constructor(size: number) {
    this.size = size
    this.bytes = new Uint8Array(Math.ceil(size / 8))
  }

  get count(): number {
    return this.#count
  }

  get(i: number): boolean {
    return i >= 0 && i < this.size && (this.bytes[i >>> 3]! & (1 << (i & 7))) !== 0
  }

  set(i: number): void {
    if (i < 0 || i >= this.size || this.get(i)) return
    this.bytes[i >>> 3]! |= 1 << (i & 7)
    this.#count++
  }

  /** Sets the bits of a wire run (chunks [start, start + count)); bits past `size` are ignored. */
  setRun(start: number, count: number, bits: Uint8Array): void {
    for (let k = 0; k < count; k++) {
      if ((bits[k >>> 3]! & (1 << (k & 7))) !== 0) this.set(start + k)
    }
  }
}

export function holds(have: Have, i: number): boolean {
  return have === 'all' || have.get(i)
}

/**
 * The `have` runs answering a get-have for [start, start + count) of a content with `leafCount`
 * chunks, `has` saying which are held: each run at most MAX_HAVE_BITS, clipped to the content.
 */
export function* haveRuns(
  has: (i: number) => boolean,
  leafCount: number,
  start: number,
  count: number,
): Generator<{ start: number; count: number; bits: Uint8Array }> {
  const end = Math.min(leafCount, start + count)
  for (let s = start; s < end; s += MAX_HAVE_BITS) {
    const n = Math.min(MAX_HAVE_BITS, end - s)
    const bits = new Uint8Array(Math.ceil(n / 8))
    for (let k = 0; k < n; k++) if (has(s + k)) bits[k >>> 3]! |= 1 << (k & 7)
    yield { start: s, count: n, bits }
  }
}
