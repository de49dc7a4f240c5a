import type { DescriptorHeader } from '../descriptor/header.ts'
import { type HaulError, ProtocolViolationError, StreamClosedError } from '../errors.ts'
import type { Network } from '../net/network.ts'
import { MAX_HAVE_REQUEST_BITS, PROTOCOL_ID } from '../protocol/messages.ts'
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import type { Budget } from '../resources/memory-budget.ts'
import { RemoteSession } from '../session/remote-session.ts'
import type { SessionPool } from '../session/session-pool.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { TransferRoute, TransferTimeouts } from '../transfer/transfer-types.ts'
import type { WorkerPool } from '../workers/pool.ts'
import { type FetchContext, type FetchLimits, fetchHeader } from './fetch-context.ts'
import { Bitset, type Have } from './have.ts'
import type { RecentPeers } from './recent-peers.ts'

export interface LinkDeps {
  readonly cid: Uint8Array
  readonly network: Network
  readonly pool: WorkerPool
  readonly budget: Budget
  readonly limits: FetchLimits
  readonly timeouts: TransferTimeouts
  readonly maxFrame: number
  /** Payload buffers come from here and go back once written. */
  readonly buffers?: BufferRecycler
  /** Open sessions kept between transfers: a connect takes one to the peer first, a finished transfer gives its back. */
  readonly sessions?: SessionPool | undefined
  /** Told each time a provider is heard from (its hello, a header it answered): see FetchRetry. */
  readonly recentPeers?: RecentPeers | undefined
}

/**
 * One provider of a multi-peer transfer: its stream session (when up), what it
 * holds, and why it is out when it is. `banned`: it misbehaved (corrupt chunks
 * past the limit, a bad proof, a protocol violation) and is never asked again
 * for this content. `gone`: it could not be reached `peerRetries` times in a
 * row; a later transfer retry may try it again.
 */
export class PeerLink {
  readonly provider: Provider
  session: RemoteSession | undefined
  have: Have | undefined
  banned: HaulError | undefined
  gone: HaulError | undefined
  /** Connection failures in a row since the last verified chunk from this peer. */
  attempts = 0
  /** get-chunks requests started and not yet ended. */
  requests = 0
  /** Bytes of chunks from this peer that passed verification and were written, over the whole transfer. */
  verifiedBytes = 0
  /** Chunks from this peer that failed verification, and requests it let time out. */
  failures = 0
  stalls = 0
  /** Chunk bytes received on this link's sessions already let go, and the current one's count when adopted. */
  #pastChunkBytes = 0
  #sessionBase = 0
  /**
   * This peer said hello on a stream in this transfer: it is there and speaks haul, whatever
   * fails after. A stream that opens is not enough: a peer that takes streams and never answers
   * fails in `retry.maxAttemptsFirstContact` attempts, as one that cannot be dialed does.
   */
  reached = false
  /** How this peer's streams went: see TransferRoute. Undefined until one opened. */
  route: TransferRoute | undefined
  #connecting: Promise<DescriptorHeader> | undefined
  /** Aborted once the link's session is handed over: a connect still under way then stops. */
  readonly #life = new AbortController()
  /** The peer said its relay circuit to us cannot carry the next chunk: the next connect needs a new one. */
  #circuitSpent = false
  #wake: (() => void) | undefined

  constructor(provider: Provider) {
    this.provider = provider
  }

  get id(): string {
    return this.provider.peerId
  }

  /**
   * Chunk bytes received from this peer over the whole transfer, verified or not, including a
   * frame a cut ended inside; repeated frames do not count (RemoteSession.chunkBytes).
   */
  get chunkBytes(): number {
    const live = this.session === undefined ? 0 : this.session.chunkBytes - this.#sessionBase
    return this.#pastChunkBytes + live
  }

  /** Bytes of a chunk on its way from this peer, not yet whole (RemoteSession.arrivingBytes). */
  get arrivingBytes(): number {
    return this.session?.arrivingBytes ?? 0
  }

  get up(): boolean {
    return this.session !== undefined && !this.session.closed && this.banned === undefined
  }

  /** A connect is in progress. */
  get connecting(): boolean {
    return this.#connecting !== undefined
  }

  get out(): boolean {
    return this.banned !== undefined || this.gone !== undefined
  }

  /** Opens a stream and checks the peer serves the content; returns its header. Shares a connect in progress. */
  connect(deps: LinkDeps, signal: AbortSignal): Promise<DescriptorHeader> {
    this.#connecting ??= this.#connect(deps, AbortSignal.any([signal, this.#life.signal])).finally(() => {
      this.#connecting = undefined
    })
    return this.#connecting
  }

  async #connect(deps: LinkDeps, signal: AbortSignal): Promise<DescriptorHeader> {
    this.drop(new StreamClosedError('reconnecting'))
    if (this.#circuitSpent) {
      this.#circuitSpent = false
      deps.network.dropSpentCircuits(this.id)
    }
    const pooled = deps.sessions?.take(this.id)
    if (pooled !== undefined) {
      this.reached = true // a pooled session's peer answered a header on it
      this.#noteRoute(deps.network.pathTo(this.id))
      try {
        return await this.#header(deps, pooled, signal)
      } catch (err) {
        // The peer closed the idle stream as it was reused: that calls for a fresh stream, not a retry.
        if (!(err instanceof StreamClosedError)) throw err
      }
    }
    const stream = await deps.network.openStream(this.id, [...this.provider.addrs], PROTOCOL_ID, {
      signal,
      idleTimeoutMs: deps.timeouts.idleMs,
    })
    this.#noteRoute(deps.network.pathTo(this.id))
    const { buffers } = deps
    const session = RemoteSession.start(stream, {
      maxFrame: deps.maxFrame,
      requestTimeoutMs: deps.timeouts.requestMs,
      closeTimeoutMs: deps.timeouts.closeMs,
      codecs: deps.limits.codecs,
      onHello: () => deps.recentPeers?.heard(this.id),
      ...(buffers === undefined
        ? {}
        : { allocPayload: buffers.take.bind(buffers), releasePayload: buffers.give.bind(buffers) }),
    })
    return await this.#header(deps, session, signal)
  }

  /** A peer first reached through a relay and later directly was upgraded (a hole punch). */
  #noteRoute(path: 'direct' | 'relayed' | undefined): void {
    if (path === undefined) return
    if (this.route === undefined) this.route = path
    else if (this.route !== path && path === 'direct') this.route = 'upgraded'
  }

  /**
   * Asks `session` for the header and adopts it; resets it on failure. fetchHeader checks the
   * bytes hash to the content id: a peer serving other content fails here.
   */
  async #header(deps: LinkDeps, session: RemoteSession, signal: AbortSignal): Promise<DescriptorHeader> {
    try {
      const header = await fetchHeader(this.context(deps, session), signal)
      deps.recentPeers?.heard(this.id)
      this.#adopt(session)
      return header
    } catch (err) {
      session.abort(err as HaulError)
      throw err
    } finally {
      if (session.remoteMaxFrame !== undefined) this.reached = true
    }
  }

  /** What the peer holds of chunks [from, leafCount). */
  async fetchHave(cid: Uint8Array, leafCount: number, signal: AbortSignal): Promise<Have> {
    const session = this.session
    if (session === undefined) throw new StreamClosedError('not connected')
    let complete = false
    const bits = new Bitset(leafCount)
    for (let start = 0; start < leafCount && !complete; start += MAX_HAVE_REQUEST_BITS) {
      const count = Math.min(MAX_HAVE_REQUEST_BITS, leafCount - start)
      await session.request(
        (requestId) => ({ type: 'get-have', requestId, cid, start, count, secret: this.provider.secret }),
        (msg) => {
          if (msg.type === 'end') return 'done'
          if (msg.type !== 'have')
            throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-have`)
          if (msg.complete) complete = true
          else if (msg.start < start || msg.start + msg.count > start + count) {
            throw new ProtocolViolationError('have run outside the range asked for')
          } else bits.setRun(msg.start, msg.count, msg.bits)
          return 'more'
        },
        { signal },
      )
    }
    this.have = complete ? 'all' : bits
    return this.have
  }

  context(deps: LinkDeps, session = this.session): FetchContext {
    if (session === undefined) throw new StreamClosedError('not connected')
    return {
      cid: deps.cid,
      secret: this.provider.secret,
      session,
      pool: deps.pool,
      budget: deps.budget,
      limits: deps.limits,
    }
  }

  /** Hands an idle session to the pool for the next transfer to this peer (or closes it); the link is down after. */
  release(sessions: SessionPool | undefined, why: HaulError): void {
    this.#handOver(sessions, why, (pool, session) => pool.give(this.id, session))
  }

  /**
   * Closes the session in the pool's care, what it still asked cancelled first (the fetch ended
   * without completing): the peer sees a receiver that stopped, and the engine's stop waits for
   * the close (`timeouts.closeMs` at most).
   */
  retire(sessions: SessionPool | undefined, why: HaulError): void {
    this.#handOver(sessions, why, (pool, session) => pool.retire(session))
  }

  /** Gives the session to the pool through `to`; a banned peer's stream (or any, without a pool) is reset. */
  #handOver(
    sessions: SessionPool | undefined,
    why: HaulError,
    to: (pool: SessionPool, session: RemoteSession) => void,
  ): void {
    this.#life.abort(why)
    if (this.session === undefined || sessions === undefined || this.banned !== undefined) {
      this.drop(why)
      return
    }
    to(sessions, this.#detach()!)
    this.kick()
  }

  /** Resets the stream (a close would wait on a peer that may be stalled). */
  drop(why: HaulError): void {
    if (why.code === 'CIRCUIT_LIMIT') this.#circuitSpent = true
    const s = this.#detach()
    s?.abort(why)
    this.kick()
  }

  #adopt(session: RemoteSession): void {
    this.session = session
    this.#sessionBase = session.chunkBytes
  }

  #detach(): RemoteSession | undefined {
    const s = this.session
    if (s !== undefined) this.#pastChunkBytes += s.chunkBytes - this.#sessionBase
    this.session = undefined
    return s
  }

  /** Waits `ms`, or less if kicked; rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        this.#wake = undefined
        resolve()
      }
      const onAbort = (): void => {
        clearTimeout(timer)
        this.#wake = undefined
        reject(signal.reason)
      }
      const timer = setTimeout(done, ms)
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.#wake = done
    })
  }

  kick(): void {
    this.#wake?.()
  }
}

/**
 * Whether `provider` serves the content `deps.cid`: a connect that checks its header. The session
 * goes back to `deps.sessions`, where the fetch's own link to that peer takes it. Never rejects.
 */
export async function servesContent(
  deps: LinkDeps,
  provider: Provider,
  signal: AbortSignal,
): Promise<boolean> {
  const link = new PeerLink(provider)
  try {
    await link.connect(deps, signal)
    link.release(deps.sessions, new StreamClosedError('asked whether it serves the content'))
    return true
  } catch {
    return false
  }
}
