import { encodeSlot, PAGE_BITS, PAGE_BYTES, pageCountOf, type SlotContents } from './journal-format.ts'

/**
 * The resume journal's durable chunk set in memory: one bit per chunk, and per bitmap page its
 * set-chunk count and bytes, the generation last written, and whether it changed since. When
 * bits are set and pages written is the write-ahead rule of ./journal.ts; a page's bytes on disk
 * are ./journal-format.ts.
 *
 * Cost: leafCount/8 bytes for the bits plus 24 bytes per page (one page per PAGE_BITS chunks).
 */
export class JournalBitmap {
  readonly leafCount: number
  readonly pageCount: number
  readonly #bits: Uint8Array
  readonly #gen: Float64Array
  readonly #pageChunks: Float64Array
  readonly #pageBytes: Float64Array
  readonly #dirty = new Set<number>()

  constructor(leafCount: number) {
    this.leafCount = leafCount
    this.pageCount = pageCountOf(leafCount)
    this.#bits = new Uint8Array(this.pageCount * PAGE_BYTES)
    this.#gen = new Float64Array(this.pageCount)
    this.#pageChunks = new Float64Array(this.pageCount)
    this.#pageBytes = new Float64Array(this.pageCount)
  }

  /** True when chunk `i`'s bit is set (false for an index outside the journal). */
  has(i: number): boolean {
    return i >= 0 && i < this.leafCount && (this.#bits[i >>> 3]! & (1 << (i & 7))) !== 0
  }

  /** Chunks below `end` whose bits are set: whole pages by their counts, the rest bit by bit. */
  chunksBelow(end: number): number {
    const last = Math.min(end, this.leafCount)
    const pages = Math.floor(last / PAGE_BITS)
    let n = 0
    for (let p = 0; p < pages; p++) n += this.#pageChunks[p]!
    for (let i = pages * PAGE_BITS; i < last; i++) if (this.has(i)) n++
    return n
  }

  /** Chunks whose bits are set. */
  get chunks(): number {
    let n = 0
    for (const c of this.#pageChunks) n += c
    return n
  }

  /**
   * The runs of set bits, as [start, end) ranges in order, at most `maxRuns` of them: the last
   * one spans from its start to the last set bit, gaps included, so a bitmap whose bits
   * alternate cannot make this as long as the file has chunks.
   */
  keptRanges(maxRuns: number): Array<{ start: number; end: number }> {
    const runs: Array<{ start: number; end: number }> = []
    let start = -1
    let last = -1
    for (let i = 0; i < this.leafCount; i++) {
      if (!this.has(i)) {
        if (start >= 0 && runs.length < maxRuns - 1) {
          runs.push({ start, end: i })
          start = -1
        }
        continue
      }
      if (start < 0) start = i
      last = i
    }
    if (start >= 0) runs.push({ start, end: last + 1 })
    return runs
  }

  /** Sets the bit of chunk `i` (`length` bytes) and marks its page changed; a set bit stays as it is. */
  set(i: number, length: number): void {
    if (this.has(i)) return
    this.#bits[i >>> 3]! |= 1 << (i & 7)
    const p = Math.floor(i / PAGE_BITS)
    this.#pageChunks[p]! += 1
    this.#pageBytes[p]! += length
    this.#dirty.add(p)
  }

  /** Clears the set bit of chunk `i` (`length` bytes) and marks its page changed. */
  clear(i: number, length: number): void {
    this.#bits[i >>> 3]! &= ~(1 << (i & 7))
    const p = Math.floor(i / PAGE_BITS)
    this.#pageChunks[p]! -= 1
    this.#pageBytes[p]! -= length
    this.#dirty.add(p)
  }

  /** The pages changed since they were last written, in order. */
  dirtyPages(): number[] {
    return [...this.#dirty].sort((a, b) => a - b)
  }

  /** Encodes page `p` at its next generation into `out` (one BLOCK); returns that generation. */
  encodeNext(p: number, out: Uint8Array): number {
    const gen = this.#gen[p]! + 1
    const bits = this.#bits.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)
    encodeSlot(p, gen, { chunks: this.#pageChunks[p]!, bytes: this.#pageBytes[p]!, bits }, out)
    return gen
  }

  /** `pages` are on disk at their next generation: that is now theirs, and they are unchanged. */
  written(pages: readonly number[]): void {
    for (const p of pages) {
      this.#gen[p]! += 1
      this.#dirty.delete(p)
    }
  }

  /** Takes page `page` as a slot read from disk holds it. */
  load(page: number, slot: SlotContents): void {
    this.#bits.set(slot.bits, page * PAGE_BYTES)
    this.#gen[page] = slot.gen
    this.#pageChunks[page] = slot.chunks
    this.#pageBytes[page] = slot.bytes
  }
}
