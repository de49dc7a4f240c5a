import { constants } from 'node:fs'
import { type FileHandle, lstat, unlink } from 'node:fs/promises'
import { contentId, type DescriptorHeader, decodeHeader, pageCountOf } from '../descriptor/header.ts'
import { ROW_SIZE } from '../descriptor/page.ts'
import type { DescriptorPage } from '../descriptor/reader.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import { ChunkUnavailableError, DestinationInvalidError, isHaulError, SourceInvalidError } from '../errors.ts'
import type { ContentReader, PublishedContent } from '../serve/registry.ts'
import { DestFolder, nameIn } from '../storage/dest-folder.ts'
import { fsError } from '../storage/fs-errors.ts'
import { Journal, type JournalOptions, journalPath } from '../storage/journal.ts'
import { PartFile } from '../storage/part-file.ts'
import { openOwnFile } from '../storage/safe-open.ts'
import type { LeafEntry } from '../types.ts'

/**
 * Partial seeding: serving the chunks of a content id this peer has verified
 * so far, from `<dest>.part`, while it downloads (or later, from a resumable
 * part file). The journal says which chunks are verified and written; the
 * leaf pages and their proofs (needed to serve `get-pages`, and to know each
 * chunk's offset and hash) are kept in a sidecar, `<dest>.part.leaves`, as the
 * fetch verifies them.
 *
 * Nothing unverified is served: a page read back from the sidecar is proved
 * against the root again before it is used, and the server hashes every chunk
 * against its leaf before sending it (as for a published file). A chunk or a
 * page this peer does not hold gets CHUNK_UNAVAILABLE, never bytes.
 *
 * Sidecar layout: slot p (page p) at p × slotBytes, slotBytes = 8 + pageSize ×
 * 44 + 64 × 32: u32 entries length, u8 proof count, 3 zero bytes, the encoded
 * rows, the proof nodes. A slot never written reads as zeros: entries length
 * 0, "absent" (a page always has at least one row). The file is sparse.
 */

const MAX_PROOF = 64
const SLOT_HEAD = 8

export function leavesPath(dest: string): string {
  return `${dest}.part.leaves`
}

export class LeafStore {
  readonly path: string
  readonly header: DescriptorHeader
  readonly slotBytes: number
  readonly #dest: string
  #fh: FileHandle | undefined

  private constructor(dest: string, header: DescriptorHeader, fh: FileHandle) {
    this.path = leavesPath(dest)
    this.#dest = dest
    this.header = header
    this.slotBytes = SLOT_HEAD + header.pageSize * ROW_SIZE + MAX_PROOF * 32
    this.#fh = fh
  }

  /**
   * Opens (creating if needed) the sidecar of `dest`; `fresh` empties it first. Like the part
   * file, it is one of haul's own files in the folder the fetch started in (src/storage/safe-open.ts,
   * src/storage/dest-folder.ts): an entry planted under its name is refused, never written through.
   */
  static async open(dest: string, header: DescriptorHeader, fresh = false): Promise<LeafStore> {
    const shown = leavesPath(dest)
    const folder = await DestFolder.pin(dest)
    try {
      const fh = await openOwnFile(
        folder.at(`${nameIn(dest)}.part.leaves`),
        constants.O_RDWR | constants.O_CREAT,
        shown,
      )
      try {
        if (fresh) await fh.truncate(0)
      } catch (err) {
        await fh.close()
        throw fsError(err, shown)
      }
      return new LeafStore(dest, header, fh)
    } finally {
      await folder.close()
    }
  }

  async put(pageIndex: number, page: DescriptorPage): Promise<void> {
    const fh = this.#fh
    if (fh === undefined || page.proof.length > MAX_PROOF) return
    const at = pageIndex * this.slotBytes
    // The proof sits at a fixed place after the largest possible page: it goes first, so a slot
    // whose length field is set always has its proof (a torn slot fails the proof, never lies).
    if (page.proof.length > 0) {
      const proof = new Uint8Array(page.proof.length * 32)
      for (const [k, node] of page.proof.entries()) proof.set(node, k * 32)
      await fh.write(proof, 0, proof.length, at + SLOT_HEAD + this.header.pageSize * ROW_SIZE)
    }
    const head = new Uint8Array(SLOT_HEAD + page.entries.length)
    new DataView(head.buffer).setUint32(0, page.entries.length)
    head[4] = page.proof.length
    head.set(page.entries, SLOT_HEAD)
    await fh.write(head, 0, head.length, at)
  }

  /** The stored page, or undefined when it was never stored. Not verified: see PartialReader. */
  async get(pageIndex: number): Promise<DescriptorPage | undefined> {
    const fh = this.#fh
    if (fh === undefined) return undefined
    const slot = new Uint8Array(this.slotBytes)
    const { bytesRead } = await fh.read(slot, 0, this.slotBytes, pageIndex * this.slotBytes)
    if (bytesRead < SLOT_HEAD) return undefined
    const view = new DataView(slot.buffer)
    const n = view.getUint32(0)
    const p = slot[4]!
    if (n === 0 || n > this.header.pageSize * ROW_SIZE || p > MAX_PROOF) return undefined
    const proofAt = SLOT_HEAD + this.header.pageSize * ROW_SIZE
    const proof = Array.from({ length: p }, (_, k) => slot.slice(proofAt + k * 32, proofAt + (k + 1) * 32))
    return { entries: slot.slice(SLOT_HEAD, SLOT_HEAD + n), proof }
  }

  async close(opts: { remove?: boolean } = {}): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close().catch(() => {})
    if (!opts.remove) return
    // Only in the folder the fetch started in: a folder swapped since keeps whatever it holds.
    const folder = await DestFolder.pin(this.#dest).catch(() => undefined)
    if (folder === undefined) return
    await unlink(folder.at(`${nameIn(this.#dest)}.part.leaves`)).catch(() => {})
    await folder.close()
  }
}

/** Pages and rows of partially held content, every page proved against the root before use. */
class PartialReader implements ContentReader {
  readonly pageCount: number
  readonly #leaves: LeafStore
  readonly #holds: (i: number) => boolean
  readonly #table: VerifiedLeafTable

  constructor(header: DescriptorHeader, leaves: LeafStore, holds: (i: number) => boolean) {
    this.pageCount = pageCountOf(header)
    this.#leaves = leaves
    this.#holds = holds
    this.#table = new VerifiedLeafTable(header, { maxCachedPages: 4 })
  }

  async readPage(pageIndex: number): Promise<DescriptorPage> {
    const page = pageIndex >= 0 && pageIndex < this.pageCount ? await this.#leaves.get(pageIndex) : undefined
    if (page === undefined)
      throw new ChunkUnavailableError(`this peer does not hold leaf page ${pageIndex} yet`)
    try {
      this.#table.acceptPage(pageIndex, page.entries, page.proof)
    } catch (err) {
      if (isHaulError(err)) throw new ChunkUnavailableError(`leaf page ${pageIndex} is damaged here`)
      throw err
    }
    return page
  }

  async entry(index: number): Promise<LeafEntry> {
    if (!this.#holds(index)) throw new ChunkUnavailableError(`this peer does not hold chunk ${index} yet`)
    const page = this.#table.pageOf(index)
    if (!this.#table.has(page)) await this.readPage(page)
    return this.#table.get(index)!
  }

  async close(): Promise<void> {}
}

export interface PartialParts {
  readonly dest: string
  readonly cid: Uint8Array
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly part: PartFile
  readonly journal: Pick<Journal, 'has'>
  readonly leaves: LeafStore
  /** Called when the registry drops this content (unpublish, engine stop). */
  readonly onClose?: () => Promise<void>
  /** Who may fetch it (PublishedContent.secrets); absent: anyone. */
  readonly secrets?: readonly Uint8Array[]
}

/** The registry entry that serves what `parts.journal` says is verified. */
export function partialContent(parts: PartialParts): PublishedContent {
  const holds = (i: number): boolean => parts.journal.has(i)
  const reader = new PartialReader(parts.header, parts.leaves, holds)
  let closed = false
  return {
    cid: parts.cid,
    path: parts.part.partPath,
    header: parts.header,
    headerBytes: parts.headerBytes,
    holds,
    ...(parts.secrets === undefined ? {} : { secrets: parts.secrets }),
    reader: {
      pageCount: reader.pageCount,
      readPage: (p) => reader.readPage(p),
      entry: (i) => reader.entry(i),
      close: async () => {
        if (closed) return
        closed = true
        await parts.onClose?.()
      },
    },
    source: {
      path: parts.part.partPath,
      // A part file is written while it is served: only its chunk hashes vouch for it.
      needsChunkHash: true,
      checkUnchanged: async () => {},
      read: async (offset, length, into) => parts.part.read(offset, into.subarray(0, length)),
      close: async () => {},
    },
  }
}

/**
 * Opens a resumable `<dest>.part` (its journal and leaf sidecar) to serve the chunks it holds.
 * The caller registers the returned content; dropping it from the registry closes the files, then
 * runs `onClose` (the caller's hold on the destination: src/storage/dest-lock.ts). A failure here
 * leaves `onClose` to the caller.
 */
export async function openPartialSeed(
  dest: string,
  journalOptions: JournalOptions,
  onClose: () => Promise<void> = async () => {},
): Promise<{ content: PublishedContent; chunks: number; leafCount: number }> {
  const loaded = await Journal.load(journalPath(dest), journalOptions)
  if (loaded.status !== 'ok') {
    throw new DestinationInvalidError(
      `${dest}.part has no usable resume journal (${loaded.status}): nothing verified to seed`,
    )
  }
  const journal = loaded.journal
  const header = decodeHeader(journal.headerBytes)
  let part: PartFile | undefined
  let leaves: LeafStore
  try {
    const existing = await PartFile.inspect(dest)
    if (
      existing === undefined ||
      existing.dev !== journal.part?.dev ||
      existing.ino !== journal.part?.ino ||
      existing.size !== header.totalSize
    ) {
      throw new DestinationInvalidError(`${dest}.part is not the file its journal describes: nothing to seed`)
    }
    // Without its leaf pages a part file cannot be served (get-pages): a fetch from one peer keeps none.
    const sidecar = await lstat(leavesPath(dest)).catch(() => undefined)
    if (sidecar?.isFile() !== true) {
      throw new SourceInvalidError(
        `${dest}.part has no leaf pages (${leavesPath(dest)}): only a multi-peer fetch keeps what seeding needs. Finish the fetch (run the same haul get again), then serve the whole file (haul seed ${dest}, or haul send)`,
      )
    }
    part = await PartFile.open(dest, header.totalSize)
    leaves = await LeafStore.open(dest, header)
  } catch (err) {
    await Promise.allSettled([journal.close(), part?.close()])
    throw err
  }
  const content = partialContent({
    dest,
    cid: contentId(journal.headerBytes),
    header,
    headerBytes: journal.headerBytes,
    part,
    journal,
    leaves,
    onClose: async () => {
      await Promise.allSettled([journal.close(), part.close(), leaves.close()])
      await onClose()
    },
  })
  return { content, chunks: journal.chunks, leafCount: header.leafCount }
}
