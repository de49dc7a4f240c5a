import {
  ConfigInvalidError,
  DescriptorInvalidError,
  InvalidArgumentError,
  ProofInvalidError,
  RootMismatchError,
} from '../errors.ts'
import { bytesEqual, HASH_SIZE, leafNodeFromRow } from '../merkle/hash.ts'
import { merkleRoot, rootFromRange } from '../merkle/tree.ts'
import type { LeafEntry } from '../types.ts'
import {
  contentId,
  type DescriptorHeader,
  decodeHeader,
  headerProblem,
  pageCountOf,
  pageLeafRange,
} from './header.ts'
import { checkRows, decodePage, decodeRow, ROW_SIZE } from './page.ts'

export interface VerifiedLeafTableOptions {
  /**
   * Verified pages kept for get(), least recently used evicted first. Memory:
   * maxCachedPages * pageSize * 44 bytes (2.75 MiB at the defaults).
   * @default 64
   */
  maxCachedPages?: number
}

export const defaultVerifiedLeafTableOptions: Required<VerifiedLeafTableOptions> = {
  maxCachedPages: 64,
}

export function verifyVerifiedLeafTableOptions(options: VerifiedLeafTableOptions): void {
  const n = options.maxCachedPages ?? defaultVerifiedLeafTableOptions.maxCachedPages
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigInvalidError(`maxCachedPages must be a positive integer, got ${n}`)
  }
}

/**
 * Decodes header bytes received from a peer and checks they are the ones the
 * content id names. Throws RootMismatchError when they are not, and the
 * header's own decode errors otherwise.
 */
export function decodeHeaderForCid(headerBytes: Uint8Array, cid: Uint8Array): DescriptorHeader {
  if (cid.length !== HASH_SIZE) throw new InvalidArgumentError(`a content id is ${HASH_SIZE} bytes`)
  if (!bytesEqual(contentId(headerBytes), cid)) {
    throw new RootMismatchError('the peer sent a descriptor header for different content')
  }
  return decodeHeader(headerBytes)
}

/**
 * Receiving side of a descriptor: accepts pages from an untrusted peer, each
 * proved against the header's root through the page-root level, and keeps a
 * bounded LRU of verified pages.
 *
 * Beyond the proof it checks that the committed table is well formed: rows
 * contiguous, chunking rules (see checkRows), the last page ending at the total
 * size, and, for content-defined chunking, that each page starts where its
 * neighbours end. For the last check it remembers each accepted page's first
 * and end offset (two numbers per page ever accepted; fixed chunking needs none).
 */
export class VerifiedLeafTable {
  readonly header: DescriptorHeader
  readonly pageCount: number
  readonly maxCachedPages: number
  readonly #cache = new Map<number, Uint8Array>()
  readonly #pageStart = new Map<number, number>()
  readonly #pageEnd = new Map<number, number>()

  constructor(header: DescriptorHeader, options: VerifiedLeafTableOptions = {}) {
    const problem = headerProblem(header)
    if (problem !== undefined) throw new DescriptorInvalidError(`invalid descriptor header: ${problem}`)
    verifyVerifiedLeafTableOptions(options)
    this.header = { ...header, chunking: { ...header.chunking }, root: new Uint8Array(header.root) }
    this.pageCount = pageCountOf(header)
    this.maxCachedPages = options.maxCachedPages ?? defaultVerifiedLeafTableOptions.maxCachedPages
  }

  get leafCount(): number {
    return this.header.leafCount
  }

  /** Pages currently cached. */
  get cachedPages(): number {
    return this.#cache.size
  }

  /** Leaf range [start, end) of a page. */
  pageRange(pageIndex: number): { start: number; end: number } {
    this.#checkPage(pageIndex)
    return pageLeafRange(this.header, pageIndex)
  }

  pageOf(index: number): number {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.header.leafCount) {
      throw new InvalidArgumentError(
        `leaf ${index} does not exist (the descriptor has ${this.header.leafCount})`,
      )
    }
    return Math.floor(index / this.header.pageSize)
  }

  /**
   * Verifies page `pageIndex` (its encoded rows and the proof of its page root)
   * and caches it. ProofInvalidError: the bytes are not what the root commits
   * to. DescriptorInvalidError: they are, but the committed table is malformed.
   */
  acceptPage(pageIndex: number, encodedEntries: Uint8Array, proof: readonly Uint8Array[]): LeafEntry[] {
    this.#checkPage(pageIndex)
    const { start, end } = pageLeafRange(this.header, pageIndex)
    const count = end - start
    if (encodedEntries.length !== count * ROW_SIZE) {
      throw new ProofInvalidError(
        `page ${pageIndex} must be ${count} rows (${count * ROW_SIZE} bytes), got ${encodedEntries.length} bytes`,
      )
    }
    const rows = new Uint8Array(encodedEntries) // private copy, also when given a Buffer view
    const nodes: Uint8Array[] = []
    for (let i = 0; i < count; i++)
      nodes.push(leafNodeFromRow(rows.subarray(i * ROW_SIZE, (i + 1) * ROW_SIZE)))
    const root = rootFromRange(this.pageCount, pageIndex, [merkleRoot(nodes)], proof)
    if (!bytesEqual(root, this.header.root)) {
      throw new ProofInvalidError(`page ${pageIndex} does not match the descriptor root`)
    }

    const entries = decodePage(rows, count, this.#expectedFirstOffset(pageIndex))
    checkRows(this.header, start, entries)
    const tail = entries[count - 1]!
    const pageEnd = tail.offset + tail.length
    if (this.header.chunking.kind === 'cdc') {
      const after = this.#pageStart.get(pageIndex + 1)
      if (after !== undefined && after !== pageEnd) {
        throw new DescriptorInvalidError(
          `page ${pageIndex} ends at ${pageEnd}, the next page starts at ${after}`,
        )
      }
      this.#pageStart.set(pageIndex, entries[0]!.offset)
      this.#pageEnd.set(pageIndex, pageEnd)
    }

    this.#cache.delete(pageIndex)
    this.#cache.set(pageIndex, rows)
    while (this.#cache.size > this.maxCachedPages) this.#cache.delete(this.#cache.keys().next().value!)
    return entries
  }

  has(pageIndex: number): boolean {
    return this.#cache.has(pageIndex)
  }

  /** A verified row, or undefined when its page is not cached (fetch and accept it first). */
  get(index: number): LeafEntry | undefined {
    const page = this.pageOf(index)
    const rows = this.#cache.get(page)
    if (rows === undefined) return undefined
    this.#cache.delete(page)
    this.#cache.set(page, rows)
    return decodeRow(rows, (index - page * this.header.pageSize) * ROW_SIZE)
  }

  #expectedFirstOffset(pageIndex: number): number | undefined {
    if (pageIndex === 0) return 0
    const { chunking, pageSize } = this.header
    if (chunking.kind === 'fixed') return pageIndex * pageSize * chunking.size
    return this.#pageEnd.get(pageIndex - 1)
  }

  #checkPage(pageIndex: number): void {
    if (!Number.isSafeInteger(pageIndex) || pageIndex < 0 || pageIndex >= this.pageCount) {
      throw new InvalidArgumentError(
        `page ${pageIndex} does not exist (the descriptor has ${this.pageCount})`,
      )
    }
  }
}
