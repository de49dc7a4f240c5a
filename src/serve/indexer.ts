import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { maxChunkSize, verifyChunkingParams } from '../chunking/params.ts'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { DescriptorWriter } from '../descriptor/writer.ts'
import { AbortedError, ContentChangedError } from '../errors.ts'
import { LeasedBufferPool } from '../resources/leased-buffer-pool.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { privateTempDir } from '../storage/private-temp.ts'
import { type FileFingerprint, fingerprint, SourceFile, sameFile, stateAt } from '../storage/source-file.ts'
import type { ChunkingParams, LeafEntry } from '../types.ts'
import { awaitedLater } from '../util/abort.ts'
import type { WorkerPool } from '../workers/pool.ts'

export interface IndexOptions {
  chunking: ChunkingParams
  pool: WorkerPool
  budget: MemoryBudget
  /** Where the descriptor goes. @default `${path}.haul` */
  descriptorPath?: string
  /** Leaves per descriptor page. @default the descriptor's default (1024) */
  pageSize?: number
  /**
   * false: a file at `descriptorPath` (one that appeared there while indexing, the caller having
   * checked there was none) is never replaced: DESTINATION_EXISTS. @default true
   */
  replaceDescriptor?: boolean
  signal?: AbortSignal
  onProgress?: (bytesDone: number, totalBytes: number) => void
}

export interface IndexResult {
  readonly cid: Uint8Array
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly descriptorPath: string
  readonly fingerprint: FileFingerprint
  readonly chunks: number
  readonly bytes: number
  readonly seconds: number
  /** The descriptor of an earlier publish of this unchanged file was used: the file was not read. */
  readonly reused: boolean
}

/** The bytes an index is built from: one file, or a collection's pack (src/collection/pack-source.ts). */
export interface IndexSource {
  readonly size: number
  /** Fills `into[0, length)` from `offset`; ContentChangedError when the bytes are no longer there. */
  read(offset: number, length: number, into: Uint8Array): Promise<void>
}

/**
 * Chunks and hashes a file into a descriptor. Memory is a fixed number of
 * chunk buffers drawn from the engine budget, whatever the file size: buffers
 * are moved to worker threads for hashing and come back to be reused.
 */
export async function indexFile(path: string, opts: IndexOptions): Promise<IndexResult> {
  opts.signal?.throwIfAborted()
  const fp = await fingerprint(path)
  const src = await SourceFile.open(path, fp)
  try {
    const r = await indexSource(src, {
      ...opts,
      descriptorPath: opts.descriptorPath ?? `${path}.haul`,
      // A file modified while it was read gives a descriptor of neither version: checked before
      // the descriptor takes its place, so what was there stays.
      beforePlace: async () => {
        if (!sameFile(await stateAt(path), fp)) {
          throw new ContentChangedError(`${path} changed while it was being indexed: index it again`)
        }
      },
    })
    return { ...r, fingerprint: fp }
  } finally {
    await src.close()
  }
}

/**
 * Runs `index` with a descriptor path in a private temporary folder, removed after: for an index
 * made only to learn a content id (does this file, or this folder, hold what a ticket names?).
 */
export async function withScratchDescriptor<T>(index: (descriptorPath: string) => Promise<T>): Promise<T> {
  const dir = await privateTempDir('haul-check-')
  try {
    return await index(join(dir, 'check.haul'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * indexFile's work on any source of bytes: the caller checks the source was unchanged throughout.
 * On failure the descriptor is not left behind.
 */
export async function indexSource(
  src: IndexSource,
  opts: IndexOptions & { descriptorPath: string; beforePlace?: () => Promise<void> },
): Promise<Omit<IndexResult, 'fingerprint'>> {
  opts.signal?.throwIfAborted()
  verifyChunkingParams(opts.chunking)
  const started = performance.now()
  const { descriptorPath } = opts
  const size = src.size
  const writer = await DescriptorWriter.create(descriptorPath, {
    chunking: opts.chunking,
    ...(opts.replaceDescriptor === undefined ? {} : { replace: opts.replaceDescriptor }),
    ...(opts.pageSize === undefined ? {} : { pageSize: opts.pageSize }),
  })
  let chunks = 0
  try {
    const append = async (e: LeafEntry): Promise<void> => {
      await writer.append(e)
      chunks++
      opts.onProgress?.(e.offset + e.length, size)
    }
    if (opts.chunking.kind === 'fixed') {
      await indexFixed(src, opts.chunking.size, opts, append)
    } else {
      await indexCdc(src, opts.chunking, opts, append)
    }
    opts.signal?.throwIfAborted()
    const { header, headerBytes, cid } = await writer.finish(
      size,
      opts.beforePlace === undefined ? {} : { beforePlace: opts.beforePlace },
    )
    const seconds = (performance.now() - started) / 1000
    return { cid, header, headerBytes, descriptorPath, chunks, bytes: size, seconds, reused: false }
  } catch (err) {
    await writer.abort()
    if (opts.signal?.aborted) throw new AbortedError('indexing was cancelled', { cause: err })
    throw err
  }
}

/**
 * Fixed chunks: up to `depth` chunks are being read (libuv threads) or hashed
 * (worker threads) at once, each in its own recycled buffer; entries are
 * appended in file order.
 */
async function indexFixed(
  src: IndexSource,
  chunkSize: number,
  opts: IndexOptions,
  append: (e: LeafEntry) => Promise<void>,
): Promise<void> {
  const size = src.size
  const depth = Math.max(4, opts.pool.threads * 3)
  const buffers = new LeasedBufferPool(opts.budget, chunkSize, { maxIdle: depth })
  const inflight: Promise<LeafEntry>[] = []
  const signal = opts.signal
  const withSignal = signal === undefined ? {} : { signal }
  const hashChunk = async (buf: Uint8Array, offset: number, length: number): Promise<LeafEntry> => {
    try {
      await src.read(offset, length, buf)
    } catch (err) {
      buffers.release(buf)
      throw err
    }
    let result: { hash: Uint8Array; buf: Uint8Array }
    try {
      result = await opts.pool.hash(buf, { length, ...withSignal })
    } catch (err) {
      buffers.discard() // the worker pool took the buffer and will not give it back
      throw err
    }
    buffers.release(result.buf)
    return { offset, length, hash: result.hash }
  }
  try {
    for (let offset = 0; offset < size; offset += chunkSize) {
      const buf = await buffers.acquire(withSignal)
      inflight.push(awaitedLater(hashChunk(buf, offset, Math.min(chunkSize, size - offset))))
      if (inflight.length >= depth) await append(await inflight.shift()!)
    }
    while (inflight.length > 0) await append(await inflight.shift()!)
  } finally {
    await Promise.allSettled(inflight)
    buffers.destroy()
  }
}

/**
 * Content-defined chunks. Cut points depend on the previous cut, so blocks are
 * cut one at a time (in a worker); each chunk found is copied into its own
 * recycled buffer and hashed on whichever thread is free, so hashing runs in
 * parallel with cutting the next block. The tail after the last cut is carried
 * to the front of the next block.
 */
async function indexCdc(
  src: IndexSource,
  params: Extract<ChunkingParams, { kind: 'cdc' }>,
  opts: IndexOptions,
  append: (e: LeafEntry) => Promise<void>,
): Promise<void> {
  const signal = opts.signal
  const withSignal = signal === undefined ? {} : { signal }
  const blockSize = Math.max(8 * 1024 * 1024, 2 * maxChunkSize(params))
  const lease = await opts.budget.acquire(blockSize, withSignal)
  // Hash buffers are max-chunk sized (a chunk can be that long); two per thread keep both busy.
  const depth = Math.max(2, opts.pool.threads * 2)
  const buffers = new LeasedBufferPool(opts.budget, params.maxSize, { maxIdle: depth })
  const inflight: Promise<LeafEntry>[] = []
  const hashChunk = async (buf: Uint8Array, offset: number, length: number): Promise<LeafEntry> => {
    let result: { hash: Uint8Array; buf: Uint8Array }
    try {
      result = await opts.pool.hash(buf, { length, ...withSignal })
    } catch (err) {
      buffers.discard()
      throw err
    }
    buffers.release(result.buf)
    return { offset, length, hash: result.hash }
  }
  const size = src.size
  let block = new Uint8Array(new ArrayBuffer(blockSize))
  try {
    let fileOffset = 0 // where the next read starts
    let chunkOffset = 0 // file offset of block[0]
    let filled = 0
    while (true) {
      signal?.throwIfAborted()
      if (filled < blockSize && fileOffset < size) {
        const n = Math.min(blockSize - filled, size - fileOffset)
        await src.read(fileOffset, n, block.subarray(filled, filled + n))
        filled += n
        fileOffset += n
      }
      const isFinal = fileOffset >= size
      if (filled === 0) break
      const cuts = await opts.pool.cdcCuts(block, filled, params, isFinal, withSignal)
      block = cuts.buf as Uint8Array<ArrayBuffer>
      let at = 0
      for (const length of cuts.lengths) {
        const buf = await buffers.acquire(withSignal)
        buf.set(block.subarray(at, at + length))
        inflight.push(awaitedLater(hashChunk(buf, chunkOffset + at, length)))
        at += length
        if (inflight.length >= depth) await append(await inflight.shift()!)
      }
      block.copyWithin(0, cuts.consumed, filled)
      filled -= cuts.consumed
      chunkOffset += cuts.consumed
      if (isFinal && filled === 0) break
    }
    while (inflight.length > 0) await append(await inflight.shift()!)
  } finally {
    await Promise.allSettled(inflight)
    buffers.destroy()
    lease.release()
  }
}
