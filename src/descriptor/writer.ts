import { randomBytes } from 'node:crypto'
import { type FileHandle, link, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ConfigInvalidError, DestinationExistsError, InvalidArgumentError } from '../errors.ts'
import { HASH_SIZE, leafNodeFromRow } from '../merkle/hash.ts'
import { StreamingRoot } from '../merkle/tree.ts'
import { fsError as destinationError } from '../storage/fs-errors.ts'
import { processAlive } from '../storage/private-temp.ts'
import { assertNotSpecial, entryAt } from '../storage/safe-open.ts'
import { writeAll } from '../storage/write-all.ts'
import type { ChunkingParams, LeafEntry } from '../types.ts'
import { throwIfAborted } from '../util/abort.ts'
import { syncDirBestEffort } from '../util/sync-dir.ts'
import { fsError, HEADER_LENGTH_SIZE, HEADER_SLOT_SIZE } from './file.ts'
import {
  chunkingProblem,
  contentId,
  DEFAULT_PAGE_SIZE,
  DESCRIPTOR_VERSION,
  type DescriptorHeader,
  encodeHeader,
  isValidPageSize,
  MAX_PAGE_SIZE,
  MIN_PAGE_SIZE,
} from './header.ts'
import { ROW_SIZE, writeRow } from './page.ts'

export interface DescriptorWriterOptions {
  /** How the content was cut; committed in the header. Required. */
  chunking: ChunkingParams
  /**
   * Leaves per page: a power of two in [16, 65536]. Also the write batch: the
   * writer holds one page of rows (pageSize * 44 bytes) in memory.
   * @default 1024
   */
  pageSize?: number
  /** Cancels create(). */
  signal?: AbortSignal
  /**
   * false: finish() never replaces a file at `path` (one that appeared there while the table was
   * written, the caller having checked there was none): DESTINATION_EXISTS, and the descriptor is
   * dropped. @default true
   */
  replace?: boolean
}

export const defaultDescriptorWriterOptions: Required<
  Omit<DescriptorWriterOptions, 'chunking' | 'signal' | 'replace'>
> = {
  pageSize: DEFAULT_PAGE_SIZE,
}

export function verifyDescriptorWriterOptions(options: DescriptorWriterOptions): void {
  if (options === null || typeof options !== 'object') throw new ConfigInvalidError('options are required')
  if (options.chunking === null || typeof options.chunking !== 'object') {
    throw new ConfigInvalidError('chunking is required')
  }
  const chunkingBad = chunkingProblem(options.chunking)
  if (chunkingBad !== undefined) throw new ConfigInvalidError(`chunking: ${chunkingBad}`)
  const pageSize = options.pageSize ?? defaultDescriptorWriterOptions.pageSize
  if (!isValidPageSize(pageSize)) {
    throw new ConfigInvalidError(
      `pageSize must be a power of two in [${MIN_PAGE_SIZE}, ${MAX_PAGE_SIZE}], got ${pageSize}`,
    )
  }
}

export interface DescriptorResult {
  header: DescriptorHeader
  headerBytes: Uint8Array
  cid: Uint8Array
}

/**
 * Streams a leaf table to `<path>.<pid>.<random>.tmp` in page-sized batches while folding the
 * root in O(log n) memory, then writes the header, fsyncs and renames to
 * `path` (links it there without `replace`, see #place). Entries must arrive in order and contiguous, and obey the chunking
 * (fixed: every chunk but the last is exactly `size`; cdc: lengths <= max, and
 * >= min except the last), so the descriptor it writes is one receivers accept.
 * Await each call before the next. A failed write or an abort removes the
 * temporary file.
 */
export class DescriptorWriter {
  readonly path: string
  readonly tmpPath: string
  readonly chunking: ChunkingParams
  readonly pageSize: number
  readonly #replace: boolean
  #fh: FileHandle | undefined
  #state: 'open' | 'busy' | 'done' = 'open'
  readonly #buffer: Uint8Array
  #buffered = 0
  #flushed = 0
  #nextOffset = 0
  #lastLength = 0
  readonly #root = new StreamingRoot()

  private constructor(
    path: string,
    tmpPath: string,
    fh: FileHandle,
    chunking: ChunkingParams,
    pageSize: number,
    replace: boolean,
  ) {
    this.path = path
    this.tmpPath = tmpPath
    this.#fh = fh
    this.chunking = chunking
    this.pageSize = pageSize
    this.#replace = replace
    this.#buffer = new Uint8Array(pageSize * ROW_SIZE)
  }

  static async create(path: string, options: DescriptorWriterOptions): Promise<DescriptorWriter> {
    verifyDescriptorWriterOptions(options)
    throwIfAborted(options.signal)
    const chunking = { ...options.chunking }
    const pageSize = options.pageSize ?? defaultDescriptorWriterOptions.pageSize
    // A name of its own: two writers of one descriptor (two engines publishing one file without
    // data folders, two processes sharing a data folder) each write their own temporary file and
    // rename it into place; the descriptor is the same either way, and neither loses its file.
    const tmpPath = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    // What is at `path` is checked now, not at the rename that ends a whole file's indexing: a
    // folder there is never replaced. Errors name `path`, the name the caller gave, never the
    // temporary file beside it (same folder, so the same reasons).
    const there = await entryAt(path)
    if (there !== undefined) assertNotSpecial(there, path)
    await removeStaleTemporaries(path)
    let fh: FileHandle
    try {
      fh = await open(tmpPath, 'wx')
    } catch (err) {
      throw destinationError(err, path)
    }
    return new DescriptorWriter(path, tmpPath, fh, chunking, pageSize, options.replace ?? true)
  }

  /** Rows appended so far. */
  get count(): number {
    return this.#root.count
  }

  /** Bytes covered so far (= the next entry's offset). */
  get size(): number {
    return this.#nextOffset
  }

  async append(entry: LeafEntry, options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#enter('append')
    try {
      throwIfAborted(options.signal)
      this.#checkNext(entry)
      const at = this.#buffered * ROW_SIZE
      writeRow(this.#buffer, at, entry)
      this.#root.push(leafNodeFromRow(this.#buffer.subarray(at, at + ROW_SIZE)))
      this.#buffered++
      this.#nextOffset = entry.offset + entry.length
      this.#lastLength = entry.length
      if (this.#buffered === this.pageSize) await this.#flush()
    } catch (err) {
      await this.#failed(err)
    }
    if (this.#state === 'busy') this.#state = 'open' // not if abort() ran meanwhile
  }

  /**
   * Writes the header and puts the descriptor at `path`. `beforePlace` runs once the file is whole
   * and synced, just before: what it throws drops the descriptor and leaves `path` as it was (an
   * indexer checking its source did not change meanwhile).
   */
  async finish(
    totalSize: number,
    options: { signal?: AbortSignal; beforePlace?: () => Promise<void> } = {},
  ): Promise<DescriptorResult> {
    this.#enter('finish')
    try {
      throwIfAborted(options.signal)
      if (totalSize !== this.#nextOffset) {
        throw new InvalidArgumentError(
          `entries cover ${this.#nextOffset} bytes, finish() was given ${totalSize}`,
        )
      }
      await this.#flush()
      const header: DescriptorHeader = {
        version: DESCRIPTOR_VERSION,
        chunking: this.chunking,
        totalSize,
        leafCount: this.#root.count,
        pageSize: this.pageSize,
        root: this.#root.finish(),
      }
      const headerBytes = encodeHeader(header)
      const slot = new Uint8Array(HEADER_SLOT_SIZE)
      new DataView(slot.buffer).setUint32(0, headerBytes.length)
      slot.set(headerBytes, HEADER_LENGTH_SIZE)
      const fh = this.#fh!
      await writeAll(fh, slot, 0, this.path)
      await fh.sync()
      await fh.close()
      this.#fh = undefined
      throwIfAborted(options.signal)
      await options.beforePlace?.()
      await this.#place()
      await syncDirBestEffort(dirname(this.path))
      this.#state = 'done'
      return { header, headerBytes, cid: contentId(headerBytes) }
    } catch (err) {
      return await this.#failed(err)
    }
  }

  /** Drops the partial descriptor. Safe to call more than once, and after a failure. */
  async abort(): Promise<void> {
    if (this.#state === 'done' && this.#fh === undefined) return
    this.#state = 'done'
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close().catch(() => {})
    await unlink(this.tmpPath).catch(() => {})
  }

  /**
   * Renames the temporary file to `path`; without `replace`, links it there instead, which fails
   * (EEXIST) when the name is taken, and removes the temporary name. A filesystem without hard
   * links (FAT, some FUSE ones) gets a check for an entry just before the rename.
   */
  async #place(): Promise<void> {
    if (this.#replace) return await rename(this.tmpPath, this.path)
    try {
      await link(this.tmpPath, this.path)
      await unlink(this.tmpPath).catch(() => {})
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') throw this.#exists(err)
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err
    }
    if ((await entryAt(this.path)) !== undefined) throw this.#exists(undefined)
    await rename(this.tmpPath, this.path)
  }

  #exists(cause: unknown): DestinationExistsError {
    return new DestinationExistsError(
      `${this.path} appeared while the descriptor was being written: it is kept; index again with another path, or replace it (--force)`,
      { cause },
    )
  }

  #enter(what: string): void {
    if (this.#state === 'busy') {
      throw new InvalidArgumentError(`${what}() called while a previous call is pending; await each call`)
    }
    if (this.#state === 'done')
      throw new InvalidArgumentError(`${what}() called on a finished or aborted writer`)
    this.#state = 'busy'
  }

  /** Caller mistakes leave the writer usable; anything else (I/O, abort) removes the partial file. */
  async #failed(err: unknown): Promise<never> {
    if (err instanceof InvalidArgumentError) {
      if (this.#state === 'busy') this.#state = 'open'
      throw err
    }
    await this.abort()
    throw fsError(err, this.path)
  }

  #checkNext(entry: LeafEntry): void {
    if (entry.offset !== this.#nextOffset) {
      throw new InvalidArgumentError(
        `entry offset ${entry.offset} is not the previous end ${this.#nextOffset}`,
      )
    }
    if (entry.hash?.length !== HASH_SIZE)
      throw new InvalidArgumentError(`entry hash must be ${HASH_SIZE} bytes`)
    const first = this.#root.count === 0
    const c = this.chunking
    if (c.kind === 'fixed') {
      if (entry.length > c.size)
        throw new InvalidArgumentError(`chunk of ${entry.length} bytes > size ${c.size}`)
      if (!first && this.#lastLength !== c.size) {
        throw new InvalidArgumentError('only the last fixed-size chunk may be short')
      }
    } else {
      if (entry.length > c.maxSize) {
        throw new InvalidArgumentError(`chunk of ${entry.length} bytes > cdc max ${c.maxSize}`)
      }
      if (!first && this.#lastLength < c.minSize) {
        throw new InvalidArgumentError('only the last cdc chunk may be shorter than the min size')
      }
    }
  }

  async #flush(): Promise<void> {
    if (this.#buffered === 0) return
    const bytes = this.#buffered * ROW_SIZE
    const position = HEADER_SLOT_SIZE + this.#flushed * ROW_SIZE
    await writeAll(this.#fh!, this.#buffer.subarray(0, bytes), position, this.path)
    this.#flushed += this.#buffered
    this.#buffered = 0
  }
}

/**
 * Removes the temporary files of writers of `path` whose process is gone (a crash or kill -9
 * mid-write): each writer names its own, so nothing else ever reuses or removes them. Best
 * effort: a folder that cannot be read keeps them.
 */
async function removeStaleTemporaries(path: string): Promise<void> {
  const dir = dirname(path)
  const prefix = `${basename(path)}.`
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length))
    if (m === null || processAlive(Number(m[1]))) continue
    await unlink(join(dir, name)).catch(() => {})
  }
}
