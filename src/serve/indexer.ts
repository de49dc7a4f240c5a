import { open } from 'node:fs/promises'
import { maxChunkSize, verifyChunkingParams } from '../chunking/params.ts'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { DescriptorWriter } from '../descriptor/writer.ts'
import { AbortedError, ContentChangedError } from '../errors.ts'
import { LeasedBufferPool } from '../resources/leased-buffer-pool.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { sourceError } from '../storage/fs-errors.ts'
import { type FileFingerprint, fingerprint, SourceFile, sameFile } from '../storage/source-file.ts'
import type { ChunkingParams, LeafEntry } from '../types.ts'
import type { WorkerPool } from '../workers/pool.ts'

export interface IndexOptions {
  chunking: ChunkingParams
  pool: WorkerPool
  budget: MemoryBudget
  /** Where the descriptor goes. @default `${path}.haul` */
  descriptorPath?: string
  /** Leaves per descriptor page. @default the descriptor's default (1024) */
  pageSize?: number
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
}

/**
 * Chunks and hashes a file into a descriptor. Memory is a fixed number of
 * chunk buffers drawn from the engine budget, whatever the file size: buffers
 * are moved to worker threads for hashing and come back to be reused.
 */
export async function indexFile(path: string, opts: IndexOptions): Promise<IndexResult> {
  opts.signal?.throwIfAborted()
  verifyChunkingParams(opts.chunking)
  const started = performance.now()
  const fp = await fingerprint(path)
  const descriptorPath = opts.descriptorPath ?? `${path}.haul`
  const writer = await DescriptorWriter.create(descriptorPath, {
    chunking: opts.chunking,
    ...(opts.pageSize === undefined ? {} : { pageSize: opts.pageSize }),
  })
  let chunks = 0
  try {
    const append = async (e: LeafEntry): Promise<void> => {
      await writer.append(e)
      chunks++
      opts.onProgress?.(e.offset + e.length, fp.size)
    }
    if (opts.chunking.kind === 'fixed') {
      await indexFixed(path, fp, opts.chunking.size, opts, append)
    } else {
      await indexCdc(path, fp, opts.chunking, opts, append)
    }
    opts.signal?.throwIfAborted()
    const { header, headerBytes, cid } = await writer.finish(fp.size)
    // A file modified while we read it would give a descriptor of neither version.
    const after = await fingerprint(path)
    if (!sameFile(after, fp)) {
      throw new ContentChangedError(`${path} changed while it was being indexed: index it again`)
    }
    const seconds = (performance.now() - started) / 1000
    return { cid, header, headerBytes, descriptorPath, fingerprint: fp, chunks, bytes: fp.size, seconds }
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
  path: string,
  fp: FileFingerprint,
  chunkSize: number,
  opts: IndexOptions,
  append: (e: LeafEntry) => Promise<void>,
): Promise<void> {
  const src = await SourceFile.open(path, fp)
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
    for (let offset = 0; offset < fp.size; offset += chunkSize) {
      const buf = await buffers.acquire(withSignal)
      inflight.push(hashChunk(buf, offset, Math.min(chunkSize, fp.size - offset)))
      if (inflight.length >= depth) await append(await inflight.shift()!)
    }
    while (inflight.length > 0) await append(await inflight.shift()!)
  } finally {
    await Promise.allSettled(inflight)
    buffers.destroy()
    await src.close()
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
  path: string,
  fp: FileFingerprint,
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
  const fh = await open(path, 'r').catch((err) => {
    lease.release()
    throw sourceError(err, path)
  })
  let block = new Uint8Array(new ArrayBuffer(blockSize))
  try {
    let fileOffset = 0 // where the next read starts
    let chunkOffset = 0 // file offset of block[0]
    let filled = 0
    while (true) {
      signal?.throwIfAborted()
      while (filled < blockSize && fileOffset < fp.size) {
        const { bytesRead } = await fh.read(block, filled, blockSize - filled, fileOffset)
        if (bytesRead === 0)
          throw new ContentChangedError(`${path} shrank while it was being indexed: index it again`)
        filled += bytesRead
        fileOffset += bytesRead
      }
      const isFinal = fileOffset >= fp.size
      if (filled === 0) break
      const cuts = await opts.pool.cdcCuts(block, filled, params, isFinal, withSignal)
      block = cuts.buf as Uint8Array<ArrayBuffer>
      let at = 0
      for (const length of cuts.lengths) {
        const buf = await buffers.acquire(withSignal)
        buf.set(block.subarray(at, at + length))
        inflight.push(hashChunk(buf, chunkOffset + at, length))
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
    await fh.close()
    lease.release()
  }
}
