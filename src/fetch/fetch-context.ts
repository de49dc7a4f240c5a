import { createHash } from 'node:crypto'
import { type DescriptorHeader, decodeHeader } from '../descriptor/header.ts'
import type { VerifiedLeafTable } from '../descriptor/verified.ts'
import { DescriptorInvalidError, InternalError, ProtocolViolationError } from '../errors.ts'
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import type { Budget } from '../resources/memory-budget.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import type { RemoteSession } from '../session/remote-session.ts'
import type { Codec } from '../types.ts'
import { ownsBuffer } from '../workers/codecs.ts'
import type { WorkerPool } from '../workers/pool.ts'

/** Engine option `fetch`; defaults (and why) and ranges: src/engine/config/table.ts. */
export interface FetchLimits {
  /** Bytes of chunks requested but not yet written, per transfer. */
  windowBytes: number
  /** Chunks named in one get-chunks request. */
  chunksPerRequest: number
  /** Descriptor pages asked for at once. */
  pagesPerRequest: number
  /** Codecs chunks may come in (the hello says them; `none` always among them). */
  codecs: readonly Codec[]
}

export interface FetchContext {
  readonly cid: Uint8Array
  /** The provider's secret from the ticket, presented with every request (undefined: public). */
  readonly secret: Uint8Array | undefined
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
    (requestId) => ({ type: 'get-header', requestId, cid: ctx.cid, secret: ctx.secret }),
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

/**
 * Fetches the leaf pages from `page` on (as many as one request may carry, at most `count`),
 * each proved against the root as it arrives and added to `table`; `onPage` sees each one
 * (the leaf sidecar keeps them for partial seeding). Throws ProtocolViolationError when the
 * peer ends the request without `page`. The one page fetch of the receiving side.
 */
export async function fetchLeafPages(
  ctx: Pick<FetchContext, 'session' | 'cid' | 'secret' | 'limits'>,
  table: VerifiedLeafTable,
  page: number,
  signal: AbortSignal,
  opts: {
    count?: number
    onPage?: (page: number, entries: Uint8Array, proof: readonly Uint8Array[]) => void
  } = {},
): Promise<void> {
  const count = Math.min(opts.count ?? ctx.limits.pagesPerRequest, table.pageCount - page)
  await ctx.session.request(
    (requestId) => ({
      type: 'get-pages',
      requestId,
      cid: ctx.cid,
      firstPage: page,
      count,
      secret: ctx.secret,
    }),
    (msg) => {
      if (msg.type === 'end') return 'done'
      if (msg.type !== 'page' || msg.pageIndex < page || msg.pageIndex >= page + count) {
        throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-pages`)
      }
      table.acceptPage(msg.pageIndex, msg.entries, msg.proof)
      opts.onPage?.(msg.pageIndex, msg.entries, msg.proof)
      return 'more'
    },
    { signal },
  )
  if (!table.has(page)) throw new ProtocolViolationError(`the peer did not send page ${page}`)
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
