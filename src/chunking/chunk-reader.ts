/**
 * Streams a file's chunks with positional reads into reused buffers, so chunking a 100 GiB file
 * holds the same memory as chunking a 100 MiB one: one chunk buffer (fixed) or one block of
 * `blockSize` bytes (CDC).
 *
 * Ownership: a yielded `bytes` is a view into the reader's buffer and is overwritten by the next
 * iteration. A consumer that needs the bytes longer may either copy them, or detach them by
 * transferring `bytes.buffer` (e.g. to a worker's transferList); the reader sees the detached buffer
 * and allocates a fresh one for what follows, and the moved memory is then the consumer's to count.
 * For CDC the detached buffer is the whole block, so the reader re-reads the rest from the file.
 */

import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import { AbortedError, ContentChangedError, InvalidArgumentError, PermissionDeniedError } from '../errors.ts'
import { READ_NONBLOCK } from '../storage/source-file.ts'
import { CdcCutter, type CdcCutterOptions } from './fastcdc.ts'
import { MAX_CHUNK_SIZE } from './params.ts'

export interface ChunkSlice {
  /** 0-based chunk number. */
  readonly index: number
  /** Byte offset of the chunk in the file. */
  readonly offset: number
  readonly length: number
  /** The chunk's bytes: a view valid until the next iteration unless its buffer is detached. */
  readonly bytes: Uint8Array
}

export interface ChunkReaderOptions {
  /** Aborting stops the generator with AbortedError before the next read or chunk. */
  readonly signal?: AbortSignal
}

export interface FixedChunkReaderOptions extends ChunkReaderOptions {
  /**
   * Buffer to read into (at least `chunkSize` bytes), e.g. one taken from a memory budget.
   * @default a new `chunkSize`-byte buffer
   */
  readonly buffer?: Uint8Array
}

export interface CdcChunkReaderOptions extends ChunkReaderOptions {
  /**
   * Bytes read from the file per refill; must be in [maxSize, 2 * 64 MiB]. Larger blocks mean fewer
   * reads and less rescanning of the tail that carries over between blocks.
   * @default 2 * maxSize
   */
  readonly blockSize?: number
}

/** Largest CDC block: two of the largest chunks. */
export const MAX_BLOCK_SIZE = 2 * MAX_CHUNK_SIZE

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('chunking was cancelled', { cause: signal.reason })
}

function isDetached(buf: Uint8Array): boolean {
  const ab = buf.buffer
  return ab instanceof ArrayBuffer && ab.detached
}

async function openRegularFile(path: string): Promise<{ fh: FileHandle; size: number; mtimeMs: number }> {
  let fh: FileHandle
  try {
    // Non-blocking: a FIFO at `path` is refused below, not waited on (see READ_NONBLOCK).
    fh = await open(path, READ_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new InvalidArgumentError(`cannot read ${path}: no such file`, { cause: err })
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PermissionDeniedError(`cannot read ${path}: permission denied`, { cause: err })
    }
    throw err
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new InvalidArgumentError(`cannot chunk ${path}: not a regular file`)
    return { fh, size: st.size, mtimeMs: st.mtimeMs }
  } catch (err) {
    await fh.close()
    throw err
  }
}

/** A file modified while it was chunked would get leaves that match no single version of it. */
async function checkUnchanged(fh: FileHandle, path: string, size: number, mtimeMs: number): Promise<void> {
  const st = await fh.stat()
  if (st.size !== size || st.mtimeMs !== mtimeMs) {
    throw new ContentChangedError(
      `${path} changed while it was being chunked (size ${size} -> ${st.size}); ` +
        'wait until it is no longer being written and add it again',
    )
  }
}

/**
 * Reads exactly `length` bytes at `offset` into `into[0 .. length)`, looping on short reads.
 * @throws ContentChangedError if the file ends before `offset + length`
 */
export async function readRange(
  fh: FileHandle,
  offset: number,
  length: number,
  into: Uint8Array,
): Promise<void> {
  if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0)) {
    throw new InvalidArgumentError(`readRange needs a whole offset and length >= 0, got ${offset}, ${length}`)
  }
  if (length > into.length) {
    throw new InvalidArgumentError(`readRange of ${length} bytes does not fit the ${into.length}-byte buffer`)
  }
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(into, done, length - done, offset + done)
    if (bytesRead === 0) {
      throw new ContentChangedError(
        `file is shorter than expected: it ends at byte ${offset + done}, wanted ${length} bytes at ` +
          `offset ${offset}; it was truncated or replaced, add it again`,
      )
    }
    done += bytesRead
  }
}

/** Yields the file in `chunkSize` pieces (the last one shorter); an empty file yields nothing. */
export async function* readFixedChunks(
  path: string,
  chunkSize: number,
  opts: FixedChunkReaderOptions = {},
): AsyncGenerator<ChunkSlice> {
  if (!(Number.isSafeInteger(chunkSize) && chunkSize > 0 && chunkSize <= MAX_CHUNK_SIZE)) {
    throw new InvalidArgumentError(`chunkSize must be a whole number from 1 to 64 MiB, got ${chunkSize}`)
  }
  if (opts.buffer !== undefined && opts.buffer.length < chunkSize) {
    throw new InvalidArgumentError(
      `buffer of ${opts.buffer.length} bytes is smaller than chunkSize ${chunkSize}`,
    )
  }
  const { signal } = opts
  throwIfAborted(signal)
  let buf = opts.buffer ?? null
  const { fh, size, mtimeMs } = await openRegularFile(path)
  try {
    let index = 0
    for (let offset = 0; offset < size; offset += chunkSize) {
      throwIfAborted(signal)
      const length = Math.min(chunkSize, size - offset)
      if (buf === null || isDetached(buf)) buf = new Uint8Array(chunkSize)
      await readRange(fh, offset, length, buf)
      throwIfAborted(signal)
      yield { index: index++, offset, length, bytes: buf.subarray(0, length) }
    }
    await checkUnchanged(fh, path, size, mtimeMs)
  } finally {
    await fh.close()
  }
}

/**
 * Yields the file's FastCDC chunks; the cut points equal `cdcCuts` over the whole file at once.
 * Reads `blockSize` bytes at a time into one reused block; the tail without a cut yet (< maxSize)
 * is moved to the block's front before the next read.
 */
export async function* readCdcChunks(
  path: string,
  params: CdcCutterOptions,
  opts: CdcChunkReaderOptions = {},
): AsyncGenerator<ChunkSlice> {
  const cutter = new CdcCutter(params)
  const blockSize = opts.blockSize ?? 2 * cutter.maxSize
  if (!(Number.isSafeInteger(blockSize) && blockSize >= cutter.maxSize && blockSize <= MAX_BLOCK_SIZE)) {
    throw new InvalidArgumentError(
      `blockSize must be a whole number from maxSize (${cutter.maxSize}) to ${MAX_BLOCK_SIZE}, got ${blockSize}`,
    )
  }
  const { signal } = opts
  throwIfAborted(signal)
  const { fh, size, mtimeMs } = await openRegularFile(path)
  try {
    let buf = new Uint8Array(blockSize)
    let base = 0 // file offset of buf[0]
    let filled = 0 // valid bytes in buf
    let pos = 0 // start of the next chunk in buf
    let index = 0
    while (base + pos < size) {
      throwIfAborted(signal)
      if (pos > 0) {
        buf.copyWithin(0, pos, filled)
        base += pos
        filled -= pos
        pos = 0
      }
      // The carried tail is < maxSize <= blockSize, so every pass reads at least one byte.
      const want = Math.min(blockSize - filled, size - (base + filled))
      await readRange(fh, base + filled, want, buf.subarray(filled, filled + want))
      filled += want
      const isFinal = base + filled === size
      throwIfAborted(signal)
      while (pos < filled) {
        const length = cutter.nextCut(buf, pos, filled, isFinal)
        if (length < 0) break
        yield { index: index++, offset: base + pos, length, bytes: buf.subarray(pos, pos + length) }
        throwIfAborted(signal)
        pos += length
        if (isDetached(buf)) {
          // The rest of the block went with it; positional reads let us fetch it again.
          buf = new Uint8Array(blockSize)
          base += pos
          filled = 0
          pos = 0
          break
        }
      }
    }
    await checkUnchanged(fh, path, size, mtimeMs)
  } finally {
    await fh.close()
  }
}
