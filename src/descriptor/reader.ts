import { type FileHandle, open } from 'node:fs/promises'
import { DescriptorInvalidError, InvalidArgumentError, isHaulError } from '../errors.ts'
import { bytesEqual, HASH_SIZE, leafNodeFromRow } from '../merkle/hash.ts'
import { MerkleLevels, merkleRoot } from '../merkle/tree.ts'
import { OpenFiles } from '../storage/open-files.ts'
import { kindOf } from '../storage/safe-open.ts'
import { type FileState, READ_NONBLOCK, sameFile, stateOf } from '../storage/source-file.ts'
import type { LeafEntry } from '../types.ts'
import { throwIfAborted } from '../util/abort.ts'
import { fsError, HEADER_LENGTH_SIZE, HEADER_SLOT_SIZE } from './file.ts'
import {
  contentId,
  type DescriptorHeader,
  decodeHeader,
  MAX_HEADER_SIZE,
  pageCountOf,
  pageLeafRange,
} from './header.ts'
import { checkRows, decodePage, ROW_SIZE } from './page.ts'

/** Target bytes per read while verifying a descriptor file; at least one page is read at a time. */
const VERIFY_READ_BYTES = 1024 * 1024

export interface DescriptorPage {
  /** The page's rows, encoded (see page.ts): what goes on the wire. */
  entries: Uint8Array
  /** proveRange siblings of this page's root in the page-root level (leafCount = pageCount). */
  proof: Uint8Array[]
}

/** Rows `entry()` reads and decodes at once. */
const ROW_BLOCK = 1024
/** Blocks of decoded rows `entry()` keeps (two streams serving different places both hit). */
const ROW_CACHE_BLOCKS = 2

/** What DescriptorReader.open takes besides the path. */
export interface DescriptorReaderOptions {
  signal?: AbortSignal
  /**
   * Where the reader's handle is kept: opened on demand, closed when other files were used more
   * recently (src/storage/open-files.ts). Without it the reader keeps its handle until closed.
   */
  files?: OpenFiles
  /** Runs once the reader is closed (a publish unpinning its descriptor, removing a temporary one). */
  onClose?: () => void | Promise<void>
}

/**
 * Serving side of a descriptor file. open() reads the whole table once, a
 * batch of pages at a time, checks every row and rebuilds the root; afterwards
 * only the tree above the page roots stays in memory (about
 * 2 * pageCount * 32 bytes), and pages and rows are read from disk on demand.
 *
 * With an OpenFiles its handle may be closed between reads: a reopen that finds the file as it
 * was (device, inode, size, mtime, ctime) reads on; one that finds another file accepts it only
 * once its table is verified again against the same root, else DESCRIPTOR_INVALID.
 */
export class DescriptorReader {
  readonly path: string
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly cid: Uint8Array
  readonly pageCount: number
  readonly #files: OpenFiles
  #identity: FileState
  #closed = false
  readonly #onClose: (() => void | Promise<void>) | undefined
  readonly #levels: MerkleLevels
  /** Decoded rows of recently served blocks, oldest first. */
  readonly #rowCache = new Map<number, LeafEntry[]>()

  private constructor(
    path: string,
    files: OpenFiles,
    identity: FileState,
    header: DescriptorHeader,
    headerBytes: Uint8Array,
    levels: MerkleLevels,
    onClose: (() => void | Promise<void>) | undefined,
  ) {
    this.path = path
    this.#files = files
    this.#identity = identity
    this.header = header
    this.headerBytes = headerBytes
    this.cid = contentId(headerBytes)
    this.pageCount = pageCountOf(header)
    this.#levels = levels
    this.#onClose = onClose
  }

  static async open(path: string, options: DescriptorReaderOptions = {}): Promise<DescriptorReader> {
    throwIfAborted(options.signal)
    const fh = await openDescriptor(path)
    try {
      const identity = await identityOf(fh, path)
      const { header, headerBytes } = await readHeader(fh, path)
      const levels = await verifyTable(fh, header, options.signal)
      const files = options.files ?? new OpenFiles(1)
      const reader = new DescriptorReader(path, files, identity, header, headerBytes, levels, options.onClose)
      // The handle just verified is the first one cached, not opened a second time.
      await files.use(
        reader,
        0,
        () => fh,
        () => {},
      )
      return reader
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** Bytes of the page-root tree held in memory. */
  get memoryBytes(): number {
    return this.#levels.byteLength
  }

  async readPage(pageIndex: number, options: { signal?: AbortSignal } = {}): Promise<DescriptorPage> {
    throwIfAborted(options.signal)
    if (!Number.isSafeInteger(pageIndex) || pageIndex < 0 || pageIndex >= this.pageCount) {
      throw new InvalidArgumentError(
        `page ${pageIndex} does not exist (the descriptor has ${this.pageCount})`,
      )
    }
    const { start, end } = pageLeafRange(this.header, pageIndex)
    const entries = await this.#readRows(start, end - start)
    return { entries, proof: this.#levels.proveRange(pageIndex, pageIndex + 1) }
  }

  /**
   * One row. Serving asks for rows in order, chunk after chunk, so the last
   * {@link ROW_CACHE_BLOCKS} blocks of {@link ROW_BLOCK} rows read this way stay
   * decoded in memory (about 100 KB a block) instead of costing a disk read
   * per chunk.
   */
  async entry(index: number, options: { signal?: AbortSignal } = {}): Promise<LeafEntry> {
    throwIfAborted(options.signal)
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.header.leafCount) {
      throw new InvalidArgumentError(
        `leaf ${index} does not exist (the descriptor has ${this.header.leafCount})`,
      )
    }
    const block = Math.floor(index / ROW_BLOCK)
    let rows = this.#rowCache.get(block)
    if (rows === undefined) {
      const start = block * ROW_BLOCK
      const count = Math.min(this.header.leafCount - start, ROW_BLOCK)
      rows = decodePage(await this.#readRows(start, count), count)
      this.#rowCache.set(block, rows)
      for (const old of this.#rowCache.keys()) {
        if (this.#rowCache.size <= ROW_CACHE_BLOCKS) break
        this.#rowCache.delete(old)
      }
    }
    return rows[index - block * ROW_BLOCK]!
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#files.forget(this)
    await this.#onClose?.()
  }

  async #readRows(first: number, count: number): Promise<Uint8Array> {
    if (this.#closed) throw new InvalidArgumentError('the descriptor reader is closed')
    return this.#files.use(
      this,
      0,
      () => this.#reopen(),
      (fh: FileHandle) => readExactly(fh, HEADER_SLOT_SIZE + first * ROW_SIZE, count * ROW_SIZE, this.path),
    )
  }

  /** The descriptor opened again after its handle was closed (see the class comment). */
  async #reopen(): Promise<FileHandle> {
    const fh = await openDescriptor(this.path)
    try {
      const now = await identityOf(fh, this.path)
      if (!sameFile(now, this.#identity)) {
        // Rewritten (a publish of the same file indexes it again): the same table or nothing.
        const { headerBytes } = await readHeader(fh, this.path)
        if (!bytesEqual(headerBytes, this.headerBytes)) throw replaced(this.path)
        await verifyTable(fh, this.header, undefined).catch((err) => {
          throw isHaulError(err) ? replaced(this.path) : err
        })
        this.#identity = now
      }
      return fh
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }
}

/** Non-blocking (READ_NONBLOCK): a descriptor replaced by a FIFO is refused, never waited on. */
async function openDescriptor(path: string): Promise<FileHandle> {
  try {
    return await open(path, READ_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DescriptorInvalidError(
        `the descriptor ${path} is gone (removed from the descriptors folder?): publish the file again`,
        { cause: err },
      )
    }
    throw fsError(err, path)
  }
}

async function identityOf(fh: FileHandle, path: string): Promise<FileState> {
  const s = await fh.stat({ bigint: true }).catch((err) => {
    throw fsError(err, path)
  })
  if (!s.isFile()) {
    throw new DescriptorInvalidError(
      `the descriptor ${path} is ${kindOf(s)}, not a regular file: remove it and publish the file again`,
    )
  }
  return stateOf(s)
}

function replaced(path: string): DescriptorInvalidError {
  return new DescriptorInvalidError(
    `the descriptor ${path} was replaced by another one while served: publish the file again`,
  )
}

async function readExactly(
  fh: FileHandle,
  position: number,
  length: number,
  path: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(out, done, length - done, position + done)
    if (bytesRead === 0) throw new DescriptorInvalidError(`${path} is shorter than its header says`)
    done += bytesRead
  }
  return out
}

async function readHeader(
  fh: FileHandle,
  path: string,
): Promise<{ header: DescriptorHeader; headerBytes: Uint8Array }> {
  const { size } = await fh.stat()
  if (size < HEADER_SLOT_SIZE) throw new DescriptorInvalidError(`${path} is too short to be a descriptor`)
  const slot = await readExactly(fh, 0, HEADER_SLOT_SIZE, path)
  const length = new DataView(slot.buffer).getUint32(0)
  if (length > MAX_HEADER_SIZE)
    throw new DescriptorInvalidError(`${path}: header length ${length} is too large`)
  const headerBytes = new Uint8Array(slot.subarray(HEADER_LENGTH_SIZE, HEADER_LENGTH_SIZE + length))
  const header = decodeHeader(headerBytes)
  if (slot.subarray(HEADER_LENGTH_SIZE + length).some((b) => b !== 0)) {
    throw new DescriptorInvalidError(`${path}: header slot padding is not zero`)
  }
  const expected = HEADER_SLOT_SIZE + header.leafCount * ROW_SIZE
  if (size !== expected) {
    throw new DescriptorInvalidError(`${path} is ${size} bytes, its header says ${expected}`)
  }
  return { header, headerBytes }
}

/** Reads the table in batches of whole pages, checks every row, and rebuilds the root from page roots. */
async function verifyTable(
  fh: FileHandle,
  header: DescriptorHeader,
  signal: AbortSignal | undefined,
): Promise<MerkleLevels> {
  const pageCount = pageCountOf(header)
  const pageRoots = new Uint8Array(pageCount * HASH_SIZE)
  const pagesPerRead = Math.max(1, Math.floor(VERIFY_READ_BYTES / (header.pageSize * ROW_SIZE)))
  let nextOffset = 0
  for (let p = 0; p < pageCount; p += pagesPerRead) {
    throwIfAborted(signal)
    const first = pageLeafRange(header, p).start
    const last = pageLeafRange(header, Math.min(p + pagesPerRead, pageCount) - 1).end
    const bytes = await readExactly(
      fh,
      HEADER_SLOT_SIZE + first * ROW_SIZE,
      (last - first) * ROW_SIZE,
      'descriptor',
    )
    for (let q = p; q < Math.min(p + pagesPerRead, pageCount); q++) {
      const { start, end } = pageLeafRange(header, q)
      const rows = bytes.subarray((start - first) * ROW_SIZE, (end - first) * ROW_SIZE)
      const entries = decodePage(rows, end - start, nextOffset)
      checkRows(header, start, entries)
      const tail = entries[entries.length - 1]!
      nextOffset = tail.offset + tail.length
      const nodes: Uint8Array[] = []
      for (let i = 0; i < end - start; i++)
        nodes.push(leafNodeFromRow(rows.subarray(i * ROW_SIZE, (i + 1) * ROW_SIZE)))
      pageRoots.set(merkleRoot(nodes), q * HASH_SIZE)
    }
  }
  const levels = new MerkleLevels(pageRoots)
  if (!bytesEqual(levels.root, header.root)) {
    throw new DescriptorInvalidError('descriptor file is corrupt: its leaf table does not match its root')
  }
  return levels
}
