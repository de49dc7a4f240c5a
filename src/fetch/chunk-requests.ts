/**
 * The get-chunks requests a fetch run has in flight: each one's rate-limit share and memory lease,
 * the reply checked against what was asked (only chunks asked for, each once, of its leaf's
 * length, none missing at the end), and what it leaves pending when it ends or is cancelled. What
 * a failed request means for its peer, and what happens to a chunk that arrived, is the caller's
 * (./coordinator.ts, ./chunk-writer.ts): this keeps the per-request accounting in one place.
 */
import { ProtocolViolationError, StreamClosedError } from '../errors.ts'
import type { Lease } from '../resources/memory-budget.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import type { Codec, LeafEntry } from '../types.ts'
import { movable, toRanges } from './fetch-context.ts'
import type { LinkDeps, PeerLink } from './peer-link.ts'
import type { ChunkPick, SwarmScheduler } from './scheduler.ts'

export interface ChunkRequest {
  readonly link: PeerLink
  /** Chunks asked for that have not arrived (nor been given up: see cancelCopies). */
  readonly pending: Set<number>
  readonly ctrl: AbortController
}

export interface ChunkRequestEvents {
  /** Chunk `index` arrived whole and is new: verify and write it (settles once it is done). */
  readonly chunk: (
    link: PeerLink,
    index: number,
    entry: LeafEntry,
    payload: Uint8Array,
    codec: Codec,
  ) => Promise<void>
  /** The request failed; the chunks that arrived before the failure are already handled. */
  readonly failed: (req: ChunkRequest, err: unknown) => void
  /** Verifying or writing a chunk of the request failed: the run's failure. */
  readonly fatal: (err: unknown) => void
  /** The request ended: its room in the peer's pipeline and its memory are free again. */
  readonly ended: () => void
}

/** What sending a request needs: the content, the budget its lease comes from, the fetch's rate limits. */
type ChunkRequestDeps = Pick<LinkDeps, 'cid' | 'budget'> & { readonly limiter?: RateLimiter | undefined }

export class ChunkRequests {
  readonly #deps: ChunkRequestDeps
  readonly #sched: SwarmScheduler
  readonly #events: ChunkRequestEvents
  readonly #open = new Set<ChunkRequest>()

  constructor(deps: ChunkRequestDeps, sched: SwarmScheduler, events: ChunkRequestEvents) {
    this.#deps = deps
    this.#sched = sched
    this.#events = events
  }

  /** Requests in flight. */
  get size(): number {
    return this.#open.size
  }

  /** Asks `link` for the chunks of `pick`, whose leaves are `entries`; its failures go to the events. */
  async send(
    link: PeerLink,
    pick: ChunkPick,
    entries: Map<number, LeafEntry>,
    signal: AbortSignal,
  ): Promise<void> {
    const session = link.session
    const req: ChunkRequest = { link, pending: new Set(pick.indices), ctrl: new AbortController() }
    const onAbort = (): void => req.ctrl.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    this.#open.add(req)
    link.requests++
    const seen = new Set<number>()
    const work: Promise<void>[] = []
    let lease: Lease | undefined
    try {
      if (session === undefined) throw new StreamClosedError('the peer went away')
      await this.#deps.limiter?.take(pick.bytes, { signal: req.ctrl.signal })
      lease = await this.#deps.budget.acquire(pick.bytes, { signal: req.ctrl.signal })
      this.#sched.sent(link.id, performance.now())
      await session.request(
        (requestId) => ({
          type: 'get-chunks',
          requestId,
          cid: this.#deps.cid,
          ranges: toRanges(pick.indices),
          secret: link.provider.secret,
        }),
        (msg) => {
          if (msg.type === 'end') return 'done'
          if (msg.type !== 'chunk')
            throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-chunks`)
          const entry = entries.get(msg.index)
          if (entry === undefined || seen.has(msg.index)) {
            throw new ProtocolViolationError(`the peer sent chunk ${msg.index}, which was not asked for`)
          }
          seen.add(msg.index)
          if (msg.rawLength !== entry.length) {
            throw new ProtocolViolationError(
              `chunk ${msg.index} claims ${msg.rawLength} bytes, its leaf ${entry.length}`,
            )
          }
          req.pending.delete(msg.index)
          // Already verified from another peer (endgame): counted as duplicate bytes and dropped.
          if (!this.#sched.arrived(link.id, msg.index, msg.payload.length, performance.now())) return 'more'
          const w = this.#events.chunk(link, msg.index, entry, movable(msg.payload), msg.codec)
          w.catch(() => {})
          work.push(w)
          return 'more'
        },
        { signal: req.ctrl.signal },
      )
      if (req.pending.size > 0) {
        throw new ProtocolViolationError(`the peer ended the request without ${req.pending.size} chunks`)
      }
    } catch (err) {
      // The chunks that arrived whole before the failure are verified and kept first: the failure
      // may end the transfer's attempt (a single provider), which would cancel their work.
      await Promise.allSettled(work)
      this.#events.failed(req, err)
    } finally {
      signal.removeEventListener('abort', onAbort)
      this.#sched.released(link.id, req.pending)
      this.#open.delete(req)
      link.requests--
      for (const r of await Promise.allSettled(work))
        if (r.status === 'rejected') this.#events.fatal(r.reason)
      lease?.release()
      this.#events.ended()
    }
  }

  /** `peer` no longer needs chunk `index`; a request left with nothing pending is cancelled. */
  cancelCopies(peer: string, index: number): void {
    for (const r of this.#open) {
      if (r.link.id !== peer || !r.pending.delete(index)) continue
      if (r.pending.size === 0) r.ctrl.abort()
    }
  }

  /** Cancels every request to `link`. */
  abortAt(link: PeerLink): void {
    for (const r of this.#open) if (r.link === link) r.ctrl.abort()
  }

  abortAll(): void {
    for (const r of this.#open) r.ctrl.abort()
  }
}
