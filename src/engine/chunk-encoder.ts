import {
  ContentChangedError,
  type HaulError,
  ProtocolViolationError,
  TooManyRequestsError,
} from '../errors.ts'
import { bytesEqual } from '../merkle/hash.ts'
import type { Codec } from '../types.ts'
import type { CodecPolicy } from '../workers/codecs.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { BufferRecycler } from './buffer-recycler.ts'
import type { MemoryBudget } from './memory-budget.ts'
import type { PublishedContent } from './registry.ts'

/** The serving side's chunk work: what it needs from the engine. */
export interface ChunkEncoderContext {
  readonly budget: MemoryBudget
  readonly pool: WorkerPool
  readonly codec: CodecPolicy
  readonly buffers?: BufferRecycler | undefined
}

export interface EncodedChunk {
  index: number
  codec: Codec
  rawLength: number
  payload: Uint8Array
  /** The payload is the recycled read buffer: lend it to the stream, give it back once released. */
  recycle: boolean
  /** Gives the chunk's budget lease back. */
  release: () => void
}

/**
 * Reads chunk `index` of `content` into a (recycled) buffer leased from the budget, hashes and
 * compresses it in the worker pool, and refuses it with CONTENT_CHANGED if it no longer matches
 * its leaf. The caller sends it, then calls `release` (the lease); the payload goes back to the
 * recycler once the stream lets go of it when `recycle` is set.
 */
export async function encodeChunk(
  ctx: ChunkEncoderContext,
  content: PublishedContent,
  index: number,
  signal: AbortSignal,
): Promise<EncodedChunk> {
  const entry = await content.reader.entry(index)
  const lease = await ctx.budget.acquire(entry.length, { signal })
  try {
    // Its own ArrayBuffer (it moves to a worker); the read overwrites all of it.
    const buf = ctx.buffers?.take(entry.length) ?? Buffer.allocUnsafeSlow(entry.length)
    await content.source.read(entry.offset, entry.length, buf)
    const enc = await ctx.pool.encode(buf, ctx.codec, { signal })
    // A compressed payload is its own buffer: the plain bytes are free already.
    const reuse = enc.payload.buffer === enc.buf.buffer
    if (!reuse) ctx.buffers?.give(enc.buf)
    if (!bytesEqual(enc.hash, entry.hash)) {
      throw new ContentChangedError(
        `${content.source.path} changed since it was indexed (chunk ${index} no longer matches): publish it again`,
      )
    }
    return {
      index,
      codec: enc.codec,
      rawLength: entry.length,
      payload: enc.payload,
      recycle: reuse,
      release: () => lease.release(),
    }
  } catch (err) {
    lease.release()
    throw err
  }
}

/**
 * Why a get-chunks request cannot be answered as asked (a range outside the file, or more than
 * `maxChunks` chunks), or undefined.
 */
export function rangeProblem(
  ranges: ReadonlyArray<{ start: number; end: number }>,
  leafCount: number,
  maxChunks: number,
): HaulError | undefined {
  let total = 0
  for (const r of ranges) {
    if (r.start >= r.end || r.end > leafCount) {
      return new ProtocolViolationError(`chunk range [${r.start}, ${r.end}) is outside 0..${leafCount}`)
    }
    total += r.end - r.start
  }
  if (total > maxChunks) return new TooManyRequestsError(`a request may name at most ${maxChunks} chunks`)
  return undefined
}

/** The chunk indices a get-chunks request names, in request order. */
export function chunkIndices(ranges: ReadonlyArray<{ start: number; end: number }>): Generator<number> {
  return (function* () {
    for (const r of ranges) for (let i = r.start; i < r.end; i++) yield i
  })()
}

/** Gives back the budget of encoded chunks that will not be sent (failed ones hold none). */
export async function releaseAll(encoded: readonly Promise<EncodedChunk>[]): Promise<void> {
  for (const p of await Promise.allSettled(encoded)) if (p.status === 'fulfilled') p.value.release()
}
