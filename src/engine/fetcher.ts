import { createHash } from 'node:crypto'
import { type DescriptorHeader, decodeHeader } from '../descriptor/header.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import {
  AbortedError,
  ChunkVerificationError,
  DecompressionError,
  DescriptorInvalidError,
  type HaulError,
  InternalError,
  ProtocolViolationError,
} from '../errors.ts'
import type { PartFile } from '../storage/part-file.ts'
import type { Codec, LeafEntry } from '../types.ts'
import { ownsBuffer } from '../workers/codecs.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { BufferRecycler } from './buffer-recycler.ts'
import type { Budget, Lease } from './memory-budget.ts'
import type { ProgressMeter } from './progress.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { RemoteSession } from './remote-session.ts'

export interface FetchLimits {
  /**
   * Bytes of chunks requested but not yet written, per transfer. 16 MiB ran no slower than 32
   * on loopback (1 GiB, 7 interleaved rounds each: median 220 against 195 MB/s) and kept the
   * receiver ~25 MB lower. @default 16 MiB, or half the engine's memory budget if less
   */
  windowBytes: number
  /** Chunks named in one get-chunks request. @default 8 */
  chunksPerRequest: number
  /** Descriptor pages asked for at once. @default 4 */
  pagesPerRequest: number
  /** Times one chunk may fail verification before the transfer fails. @default 3 */
  maxChunkAttempts: number
}

export const defaultFetchLimits: Readonly<FetchLimits> = {
  windowBytes: 16 * 1024 * 1024,
  chunksPerRequest: 8,
  pagesPerRequest: 4,
  maxChunkAttempts: 3,
}

export interface FetchContext {
  readonly cid: Uint8Array
  readonly session: RemoteSession
  readonly pool: WorkerPool
  readonly budget: Budget
  /** Recycles payload and output buffers once a chunk is on disk. */
  readonly buffers?: BufferRecycler
  readonly limits: FetchLimits
  /** Download bandwidth: taken before a request is sent (and before its budget), so a throttled transfer holds no memory. */
  readonly limiter?: RateLimiter
}

/** Asks for the descriptor header and checks that it hashes to the content id. */
export async function fetchHeader(ctx: FetchContext, signal: AbortSignal): Promise<DescriptorHeader> {
  let bytes: Uint8Array | undefined
  await ctx.session.request(
    (requestId) => ({ type: 'get-header', requestId, cid: ctx.cid }),
    (msg) => {
      if (msg.type !== 'header') throw new ProtocolViolationError(`expected header, got ${msg.type}`)
      bytes = msg.header
      return 'done'
    },
    { signal },
  )
  if (bytes === undefined) throw new InternalError('header reply lost')
  const digest = createHash('sha256').update(bytes).digest()
  if (!digest.equals(ctx.cid)) {
    throw new DescriptorInvalidError(
      'the peer sent a descriptor that does not match the content id: it is not serving that content',
    )
  }
  return decodeHeader(bytes)
}

/** Which chunks are already verified on disk, and where newly written ones are recorded (the resume journal). */
export interface ChunkJournal {
  has(index: number): boolean
  /** May return a promise: awaiting it is the backpressure that bounds unsynced work. */
  record(index: number, length: number): Promise<void> | undefined
}

interface Batch {
  readonly entries: Map<number, LeafEntry>
  /** One lease for the whole batch: taking them chunk by chunk could deadlock two batches that each hold half. */
  readonly lease: Lease
  readonly bytes: number
}

/**
 * Why a fetch's inner signal is aborted once `run` is over, whatever its outcome: anything still
 * listening stops. One shared reason: `abort()` without one builds a DOMException and its stack
 * for every transfer (~40 µs each at 10,000 transfers, CPU profile).
 */
const FETCH_OVER = new AbortedError('the fetch is over')

/**
 * Pulls every chunk not yet written: windows of requests sized by `windowBytes`
 * and the engine budget (a lease per chunk, taken before it is asked for),
 * each chunk decompressed and verified against its leaf in the worker pool and
 * only then written at its offset. A chunk that fails verification is asked
 * for again, up to `maxChunkAttempts` times.
 */
export class ChunkFetcher {
  readonly #ctx: FetchContext
  readonly #header: DescriptorHeader
  readonly #table: VerifiedLeafTable
  readonly #part: PartFile
  readonly #meter: ProgressMeter
  readonly #onChunk: () => void
  readonly #journal: ChunkJournal | undefined
  readonly #failures: Map<number, number>
  readonly #retry: Array<[number, LeafEntry]> = []
  #inflightBytes = 0
  readonly #inflight = new Set<Promise<void>>()

  constructor(
    ctx: FetchContext,
    header: DescriptorHeader,
    part: PartFile,
    meter: ProgressMeter,
    onChunk: () => void,
    journal?: ChunkJournal,
    /** Verification failures per chunk; pass the same map to every fetcher of one transfer so reconnects do not reset it. */
    failures: Map<number, number> = new Map(),
  ) {
    this.#ctx = ctx
    this.#header = header
    // Chunks are pulled in file order, so a few pages beyond one request are all that is ever needed.
    this.#table = new VerifiedLeafTable(header, { maxCachedPages: 2 * ctx.limits.pagesPerRequest })
    this.#part = part
    this.#meter = meter
    this.#onChunk = onChunk
    this.#journal = journal
    this.#failures = failures
  }

  async run(signal: AbortSignal): Promise<void> {
    const inner = new AbortController()
    const onAbort = (): void => inner.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    let failure: unknown
    const track = (p: Promise<void>): void => {
      const t = p.catch((err) => {
        failure ??= err
        inner.abort(err)
      })
      this.#inflight.add(t)
      void t.finally(() => this.#inflight.delete(t))
    }
    try {
      const n = this.#header.leafCount
      let next = 0
      while (next < n || this.#retry.length > 0 || this.#inflight.size > 0) {
        if (inner.signal.aborted) break
        if (this.#retry.length > 0) {
          const batch = await this.#makeBatch([this.#retry.shift()!], inner.signal)
          track(this.#fetchBatch(batch, inner.signal))
          continue
        }
        if (next >= n) {
          await Promise.race(this.#inflight)
          continue
        }
        // Chunks already verified on disk (a resumed or reconnected transfer) are never asked for again.
        if (this.#journal?.has(next)) {
          next++
          continue
        }
        await this.#ensurePage(this.#table.pageOf(next), inner.signal)
        const pageEnd = Math.min(n, (this.#table.pageOf(next) + 1) * this.#header.pageSize)
        const end = Math.min(pageEnd, next + this.#ctx.limits.chunksPerRequest)
        // A batch never needs more than half the budget, so two transfers can always both move,
        // nor more than half the window, so the next request is out before the last one ends
        // (a batch's lease comes back only once all of its chunks are written).
        const maxBatchBytes = Math.min(this.#ctx.limits.windowBytes, this.#ctx.budget.limit) / 2
        const picked: Array<[number, LeafEntry]> = []
        let bytes = 0
        let i = next
        for (; i < end; i++) {
          if (this.#journal?.has(i)) continue
          const e = this.#table.get(i)!
          if (picked.length > 0 && bytes + e.length > maxBatchBytes) break
          picked.push([i, e])
          bytes += e.length
        }
        while (this.#inflight.size > 0 && this.#inflightBytes + bytes > this.#ctx.limits.windowBytes) {
          await Promise.race(this.#inflight)
        }
        if (inner.signal.aborted) break
        const batch = await this.#makeBatch(picked, inner.signal)
        track(this.#fetchBatch(batch, inner.signal))
        next = i
      }
      await Promise.allSettled(this.#inflight)
      if (failure !== undefined) throw failure
      if (signal.aborted) throw new AbortedError('the transfer was cancelled')
      inner.signal.throwIfAborted()
    } catch (err) {
      // A wait cut short by the inner abort (a page, the budget, the rate limit) reports the
      // request failure that caused it: that one is what the transfer retries, not an abort.
      throw failure ?? (signal.aborted ? new AbortedError('the transfer was cancelled') : err)
    } finally {
      inner.abort(FETCH_OVER)
      await Promise.allSettled(this.#inflight)
      signal.removeEventListener('abort', onAbort)
    }
  }

  async #ensurePage(page: number, signal: AbortSignal): Promise<void> {
    if (this.#table.has(page)) return
    const count = Math.min(this.#ctx.limits.pagesPerRequest, this.#table.pageCount - page)
    await this.#ctx.session.request(
      (requestId) => ({ type: 'get-pages', requestId, cid: this.#ctx.cid, firstPage: page, count }),
      (msg) => {
        if (msg.type === 'end') return 'done'
        if (msg.type !== 'page' || msg.pageIndex < page || msg.pageIndex >= page + count) {
          throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-pages`)
        }
        this.#table.acceptPage(msg.pageIndex, msg.entries, msg.proof)
        return 'more'
      },
      { signal },
    )
    if (!this.#table.has(page)) throw new ProtocolViolationError(`the peer did not send page ${page}`)
  }

  async #makeBatch(picked: Array<[number, LeafEntry]>, signal: AbortSignal): Promise<Batch> {
    const bytes = picked.reduce((sum, [, e]) => sum + e.length, 0)
    await this.#ctx.limiter?.take(bytes, { signal })
    const lease = await this.#ctx.budget.acquire(bytes, { signal })
    this.#inflightBytes += bytes
    return { entries: new Map(picked), lease, bytes }
  }

  async #fetchBatch(batch: Batch, signal: AbortSignal): Promise<void> {
    const work: Promise<void>[] = []
    const indices = [...batch.entries.keys()]
    let settled: PromiseSettledResult<void>[] = []
    try {
      await this.#ctx.session.request(
        (requestId) => ({ type: 'get-chunks', requestId, cid: this.#ctx.cid, ranges: toRanges(indices) }),
        (msg) => {
          if (msg.type === 'end') return 'done'
          if (msg.type !== 'chunk')
            throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-chunks`)
          const entry = batch.entries.get(msg.index)
          if (entry === undefined)
            throw new ProtocolViolationError(`the peer sent chunk ${msg.index}, which was not asked for`)
          if (msg.rawLength !== entry.length) {
            throw new ProtocolViolationError(
              `chunk ${msg.index} claims ${msg.rawLength} bytes, its leaf says ${entry.length}`,
            )
          }
          batch.entries.delete(msg.index)
          const w = this.#verifyAndWrite(msg.index, entry, movable(msg.payload), msg.codec, signal)
          // Rethrown below once the request ends; without a handler now, a write that fails while the
          // request still streams (a full disk) is an unhandled rejection, which ends the process.
          w.catch(() => {})
          work.push(w)
          return 'more'
        },
        { signal },
      )
      if (batch.entries.size > 0) {
        throw new ProtocolViolationError(`the peer ended the request without ${batch.entries.size} chunks`)
      }
    } finally {
      settled = await Promise.allSettled(work)
      batch.lease.release()
      this.#inflightBytes -= batch.bytes
    }
    for (const r of settled) if (r.status === 'rejected') throw r.reason
  }

  async #verifyAndWrite(
    index: number,
    entry: LeafEntry,
    payload: Uint8Array,
    codec: Codec,
    signal: AbortSignal,
  ): Promise<void> {
    let plain: Uint8Array
    try {
      const buffers = this.#ctx.buffers
      const into = codec === 'lz4' ? buffers?.take(entry.length) : undefined
      plain = await this.#ctx.pool.decodeVerify(payload, codec, entry.length, entry.hash, {
        signal,
        ...(into === undefined ? {} : { into }),
        ...(buffers === undefined ? {} : { onSpare: (b: Uint8Array) => buffers.give(b) }),
      })
    } catch (err) {
      if (err instanceof ChunkVerificationError || err instanceof DecompressionError) {
        const failures = (this.#failures.get(index) ?? 0) + 1
        this.#failures.set(index, failures)
        if (failures >= this.#ctx.limits.maxChunkAttempts) {
          throw new ChunkVerificationError(
            `chunk ${index} failed verification ${failures} times: the peer is serving corrupt data (${(err as HaulError).message})`,
          )
        }
        this.#retry.push([index, entry])
        return
      }
      throw err
    }
    await this.#part.write(entry.offset, plain)
    // On disk now: the memory can carry the next chunk.
    this.#ctx.buffers?.give(plain)
    await this.#journal?.record(index, entry.length)
    this.#failures.delete(index)
    this.#meter.add(entry.length)
    this.#onChunk()
  }
}

/**
 * A buffer moved to a worker must own its whole ArrayBuffer. A payload the
 * decoder had to gather from several network reads already does; one that is a
 * view into a larger network buffer is copied (the one copy the transport forces).
 */
export function movable(payload: Uint8Array): Uint8Array {
  if (ownsBuffer(payload)) return payload
  const own = new Uint8Array(payload.length)
  own.set(payload)
  return own
}

/** Sorted chunk indices as the fewest ranges, for a get-chunks request. */
export function toRanges(indices: number[]): Array<{ start: number; end: number }> {
  const sorted = [...indices].sort((a, b) => a - b)
  const out: Array<{ start: number; end: number }> = []
  for (const i of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && last.end === i) last.end = i + 1
    else out.push({ start: i, end: i + 1 })
  }
  return out
}
