import { cidToString } from '../descriptor/cid.ts'
import { type ErrorCode, type HaulError, isHaulError } from '../errors.ts'
import type { PublishedContent } from './registry.ts'

/**
 * What the serving side of an engine reports to `Engine.onServe` listeners. A session is one
 * inbound stream of one peer; a receiver opens one per provider it fetches from, and may reuse
 * it for its next fetch from the same peer. `session` numbers are unique within an engine.
 */
export type ServeEvent =
  | SessionOpened
  | ContentRequested
  | ChunksServed
  | SessionEnded
  | ContentWithdrawn
  | RelaySlot

/** A peer opened a stream to fetch from this engine. */
export interface SessionOpened {
  readonly type: 'session-opened'
  readonly session: number
  readonly peerId: string
  /** The peer's address as its connection reports it (a multiaddr; '' when not known). */
  readonly remoteAddr: string
}

/**
 * The peer asked for a content's header (the start of a fetch on this session), or for chunks of
 * a content other than the one it was fetching.
 */
export interface ContentRequested {
  readonly type: 'content-requested'
  readonly session: number
  readonly peerId: string
  readonly cid: string
  /** The local file (or part file, for a partial seed) it is served from. */
  readonly path: string
  /** The content's size and chunk count. */
  readonly totalBytes: number
  readonly totalChunks: number
  /** Served from a partial copy (`engine.seed`, or a multi-peer fetch sharing what it has). */
  readonly partial: boolean
}

/**
 * Chunks this session sent since its previous `chunks-served`, of the content last requested:
 * at most one event per session every SERVE_EVENT_INTERVAL_MS (the last one at most that long
 * after its chunks went out), and one before the session changes content or ends, so the counts
 * add up to every chunk sent.
 */
export interface ChunksServed {
  readonly type: 'chunks-served'
  readonly session: number
  readonly peerId: string
  readonly cid: string
  /** Chunk bytes (as in the file) and chunks sent since the previous event. */
  readonly bytes: number
  readonly chunks: number
  /** The same chunks' bytes on the wire (compressed, before encryption). */
  readonly wireBytes: number
  /** Chunk bytes of this content sent on this session since it was requested. */
  readonly contentBytes: number
}

/** The session is over; the counts are its whole life, across contents. */
export interface SessionEnded {
  readonly type: 'session-ended'
  readonly session: number
  readonly peerId: string
  readonly bytes: number
  readonly chunks: number
  readonly wireBytes: number
  /**
   * `closed`: the peer ended it (closed, or reset it with nothing asked, as a receiver does once
   * done); `failed`: it broke (a reset mid-request, a broken bound, a protocol violation; `code`
   * and `message` say which); `stopped`: this engine is stopping.
   */
  readonly reason: 'closed' | 'failed' | 'stopped'
  /**
   * Requests were queued or being answered when it ended, or (a reset) the peer had just
   * cancelled one: a fetch was cut off.
   */
  readonly busy: boolean
  readonly code?: ErrorCode
  readonly message?: string
}

/**
 * This engine stopped serving a content by itself: its file changed since it was indexed
 * (`CONTENT_CHANGED`), so no receiver could verify it. Publishing the file again gives a new
 * content id and ticket.
 */
export interface ContentWithdrawn {
  readonly type: 'content-withdrawn'
  readonly cid: string
  /** The local file (or part file) it was served from. */
  readonly path: string
  readonly code: ErrorCode
  readonly message: string
}

/**
 * This engine's slot on a configured relay (`relays`) was lost (the relay restarted, the link
 * went down: receivers that need the relay cannot reach this engine meanwhile), reserving it
 * again failed and is tried again in `inMs`, or the slot is held again.
 */
export type RelaySlot =
  | { readonly type: 'relay-slot'; readonly relay: string; readonly state: 'lost' | 'reserved' }
  | {
      readonly type: 'relay-slot'
      readonly relay: string
      readonly state: 'retrying'
      readonly reason: string
      readonly inMs: number
    }

export type ServeListener = (event: ServeEvent) => void

/** Least time between two `chunks-served` events of one session. */
export const SERVE_EVENT_INTERVAL_MS = 500

/**
 * An engine's serving events: its listeners and the sessions alive now. Every session registers
 * here (a Set entry, so that `stop` can end them) and counts what it sends with a few additions
 * per chunk; events are built only while someone listens. A listener runs synchronously inside
 * the serving loop and should return quickly; serving never depends on one. Engine.onServe
 * shields the caller's listeners (a throw is a process warning: engine/api-args.ts); a throw
 * that reaches here anyway is ignored.
 */
export class ServeEvents {
  readonly #listeners = new Set<ServeListener>()
  readonly #live = new Set<SessionEvents>()
  #ids = 0

  /** Someone listens: events are worth building. */
  get active(): boolean {
    return this.#listeners.size > 0
  }

  /** Adds `listener`; the returned function removes it. */
  listen(listener: ServeListener): () => void {
    const own = (e: ServeEvent): void => listener(e)
    this.#listeners.add(own)
    return () => {
      this.#listeners.delete(own)
    }
  }

  emit(event: ServeEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event)
      } catch {
        // A listener's failure is its own: the peer is still served.
      }
    }
  }

  /** A new session of `peerId`; `busy` says whether it has requests queued or in progress. */
  open(peerId: string, remoteAddr: string, busy: () => boolean): SessionEvents {
    const s = new SessionEvents(this, ++this.#ids, peerId, busy, (x) => this.#live.delete(x))
    this.#live.add(s)
    if (this.active) this.emit({ type: 'session-opened', session: s.id, peerId, remoteAddr })
    return s
  }

  /** `content` is no longer served, for `why` (see ContentWithdrawn). */
  withdrawn(content: PublishedContent, why: HaulError): void {
    if (!this.active) return
    this.emit({
      type: 'content-withdrawn',
      cid: cidToString(content.cid),
      path: content.path,
      code: why.code,
      message: why.message,
    })
  }

  /** Sessions alive now. */
  get sessions(): number {
    return this.#live.size
  }

  /** The engine is stopping: every live session ends now, with reason `stopped`. */
  stop(): void {
    for (const s of [...this.#live]) s.stop()
  }
}

/** One session's counters and its events (see ServeEvents). */
export class SessionEvents {
  readonly id: number
  readonly #hub: ServeEvents
  readonly #peerId: string
  readonly #busy: () => boolean
  readonly #forget: (s: SessionEvents) => void
  #content: PublishedContent | undefined
  #cid = ''
  #bytes = 0
  #chunks = 0
  #wireBytes = 0
  /** Counted since the last chunks-served. */
  #pendingBytes = 0
  #pendingChunks = 0
  #pendingWire = 0
  #contentBytes = 0
  #lastEmit = 0
  /** Reports chunks held back by the interval once it has passed. */
  #timer: NodeJS.Timeout | undefined
  #ended = false

  constructor(
    hub: ServeEvents,
    id: number,
    peerId: string,
    busy: () => boolean,
    forget: (s: SessionEvents) => void,
  ) {
    this.#hub = hub
    this.id = id
    this.#peerId = peerId
    this.#busy = busy
    this.#forget = forget
  }

  /**
   * A request names `content`: a header request starts a fetch, a chunk request may switch
   * content. The same header asked for again with nothing served in between is not news.
   */
  request(content: PublishedContent, header: boolean): void {
    if (content === this.#content && (!header || this.#contentBytes === 0)) return
    this.flush()
    this.#content = content
    this.#contentBytes = 0
    if (!this.#hub.active) {
      this.#cid = ''
      return
    }
    this.#cid = cidToString(content.cid)
    this.#hub.emit({
      type: 'content-requested',
      session: this.id,
      peerId: this.#peerId,
      cid: this.#cid,
      path: content.path,
      totalBytes: content.header.totalSize,
      totalChunks: content.header.leafCount,
      partial: content.holds !== undefined,
    })
  }

  /** A chunk of `rawLength` bytes went out as `wireLength` payload bytes. */
  chunkSent(rawLength: number, wireLength: number): void {
    this.#bytes += rawLength
    this.#chunks++
    this.#wireBytes += wireLength
    this.#pendingBytes += rawLength
    this.#pendingChunks++
    this.#pendingWire += wireLength
    this.#contentBytes += rawLength
    if (!this.#hub.active) return
    const now = performance.now()
    const wait = SERVE_EVENT_INTERVAL_MS - (now - this.#lastEmit)
    if (wait <= 0) this.flush(now)
    else
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined
        this.flush()
      }, wait).unref()
  }

  /** Reports the chunks counted since the last event, if any. */
  flush(now = performance.now()): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pendingChunks === 0) return
    const e = { bytes: this.#pendingBytes, chunks: this.#pendingChunks, wireBytes: this.#pendingWire }
    this.#pendingBytes = 0
    this.#pendingChunks = 0
    this.#pendingWire = 0
    this.#lastEmit = now
    const content = this.#content
    if (!this.#hub.active || content === undefined) return
    // A listener added during this content's fetch has no text form of its id yet.
    if (this.#cid === '') this.#cid = cidToString(content.cid)
    this.#hub.emit({
      type: 'chunks-served',
      session: this.id,
      peerId: this.#peerId,
      cid: this.#cid,
      ...e,
      contentBytes: this.#contentBytes,
    })
  }

  /**
   * Ends the session once: `failure` undefined when the peer closed it, `busy` when requests
   * were unanswered as it ended. Ended by `ServeEvents.stop` first, its own end reports nothing.
   */
  end(failure: unknown, busy: boolean): void {
    // A receiver resets a stream it no longer needs (a graceful close would wait on the peer):
    // a reset with nothing asked is the peer's end of the session, not a failure.
    const peerEnded =
      failure === undefined || (!busy && isHaulError(failure) && failure.code === 'STREAM_CLOSED')
    this.#finish(peerEnded ? 'closed' : 'failed', busy, peerEnded ? undefined : failure)
  }

  /** The engine is stopping (ServeEvents.stop). */
  stop(): void {
    this.#finish('stopped', this.#busy(), undefined)
  }

  #finish(reason: SessionEnded['reason'], busy: boolean, failure: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.flush()
    this.#forget(this)
    if (!this.#hub.active) return
    const why =
      failure === undefined
        ? {}
        : isHaulError(failure)
          ? { code: failure.code, message: failure.message }
          : { code: 'INTERNAL' as const, message: String((failure as Error)?.message ?? failure) }
    this.#hub.emit({
      type: 'session-ended',
      session: this.id,
      peerId: this.#peerId,
      bytes: this.#bytes,
      chunks: this.#chunks,
      wireBytes: this.#wireBytes,
      reason,
      busy,
      ...why,
    })
  }
}
