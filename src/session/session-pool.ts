import { StreamClosedError } from '../errors.ts'
import { Pending } from '../util/pending.ts'
import type { RemoteSession } from './remote-session.ts'

/** Engine option `sessions`; defaults and ranges: src/engine/config/table.ts. */
export interface SessionPoolOptions {
  /**
   * Sessions kept open, across all peers, after their transfer finished, for the next transfer
   * to the same peer. 0 turns reuse off (a stream per transfer).
   */
  maxIdle: number
  /**
   * An idle session is closed after this long. Shorter than `timeouts.idleMs`, the stream's own
   * idle timeout, which would otherwise close it first.
   */
  idleMs: number
}

const evicted = (): StreamClosedError =>
  new StreamClosedError('an idle session made room for a newer one (sessions.maxIdle)')

interface IdleSession {
  readonly peer: string
  readonly session: RemoteSession
  readonly since: number
}

/**
 * Open sessions to peers, kept between transfers. A fresh stream costs a transfer a yamux
 * open and close, a multistream-select round trip, a peer-store update and the hello
 * exchange: together more CPU than a small file's bytes. A finished transfer hands its
 * session here, and the next transfer to that peer takes it.
 *
 * A session is only ever used by one transfer at a time, as a fresh one would be: the serving
 * side answers one stream's requests in order, so sharing one would queue transfers behind
 * each other. Bounded by `maxIdle` (a full pool resets its oldest) and by `idleMs`.
 */
export class SessionPool {
  readonly #o: SessionPoolOptions
  /** Oldest first. */
  #idle: IdleSession[] = []
  #timer: NodeJS.Timeout | undefined
  #closed = false
  /**
   * Sessions given back while busy, closing (each within `timeouts.closeMs`): `close` waits for
   * them, so an engine that stops at once still withdraws what they asked.
   */
  readonly #closing = new Pending<void>()

  constructor(o: SessionPoolOptions) {
    this.#o = o
  }

  /** Sessions kept now (some may have closed since, until taken or swept). */
  get idle(): number {
    return this.#idle.length
  }

  /** The most recently returned open session to `peer`, now the caller's; undefined if none. */
  take(peer: string): RemoteSession | undefined {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const entry = this.#idle[i]!
      if (entry.peer !== peer) continue
      this.#idle.splice(i, 1)
      // Closed while idle (the peer hung up, or its idle timer ran): keep looking.
      if (entry.session.closed) continue
      return entry.session
    }
    return undefined
  }

  /** Takes back a session whose transfer finished; one still busy or already closed is closed instead. */
  give(peer: string, session: RemoteSession): void {
    if (this.#closed || this.#o.maxIdle === 0 || session.closed || session.pendingRequests > 0) {
      this.#closeLater(session)
      return
    }
    // Reset, not closed: a graceful close keeps the stream open until the peer answers, and the
    // bound on open streams (admitted fetches + maxIdle) would not hold meanwhile.
    if (this.#idle.length >= this.#o.maxIdle) this.#idle.shift()!.session.abort(evicted())
    this.#idle.push({ peer, session, since: performance.now() })
    this.#timer ??= setInterval(() => this.#sweep(), Math.max(1, this.#o.idleMs / 2)).unref()
  }

  /**
   * Closes every idle session, and later `give`s close theirs at once; resolves once all have
   * closed. Closed, not reset: a peer still answering what a finished fetch cancelled (a
   * multi-peer fetch's other providers) reads the cancels, then the end, and sees a receiver
   * that stopped fetching rather than one cut off; a reset can overtake the cancels. A peer that
   * no longer answers holds it `timeouts.closeMs` at most.
   */
  async close(): Promise<void> {
    this.#closed = true
    this.#stopTimer()
    const idle = this.#idle
    this.#idle = []
    for (const e of idle) this.#closeLater(e.session)
    await this.#closing.settled()
  }

  /**
   * Closes a session that is not to be kept (its fetch was cancelled or failed): what it still
   * asked is cancelled first, and `close` waits for it.
   */
  retire(session: RemoteSession): void {
    this.#closeLater(session)
  }

  #closeLater(session: RemoteSession): void {
    void this.#closing.add(session.close())
  }

  #sweep(): void {
    const cutoff = performance.now() - this.#o.idleMs
    let expired = 0
    while (expired < this.#idle.length && this.#idle[expired]!.since <= cutoff) expired++
    for (const e of this.#idle.splice(0, expired)) this.#closeLater(e.session)
    if (this.#idle.length === 0) this.#stopTimer()
  }

  #stopTimer(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
