import type { DescriptorHeader } from '../descriptor/header.ts'
import { type HaulError, InternalError, StreamClosedError } from '../errors.ts'
import type { Network } from '../net/network.ts'
import { PROTOCOL_ID } from '../protocol/messages.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import type { JournalOptions } from '../storage/journal-options.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { AdmissionPlace } from './admission.ts'
import type { BufferRecycler } from './buffer-recycler.ts'
import { type DestinationPolicy, holdsContent, type PresentState, presentState } from './destination.ts'
import { ChunkFetcher, type FetchContext, type FetchLimits, fetchHeader } from './fetcher.ts'
import {
  assertComplete,
  type LocalTransfer,
  openLocalTransfer,
  ProgressThrottle,
  transferResult,
} from './local-transfer.ts'
import type { Budget } from './memory-budget.ts'
import type { TransferProgress } from './progress.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { Rehasher } from './rehash.ts'
import { RemoteSession } from './remote-session.ts'
import type { ResumeInfo } from './resume.ts'
import { isTransient, type RetryInfo, type RetryOptions } from './retry.ts'
import type { SessionPool } from './session-pool.ts'
import type { Ticket } from './ticket.ts'
import type { TransferJob } from './transfer-machine.ts'
import type { FetchResult, TransferTimeouts } from './transfer-types.ts'

export type { FetchResult, TransferTimeouts } from './transfer-types.ts'

export interface FetchJobDeps {
  readonly network: Network
  readonly pool: WorkerPool
  readonly budget: Budget
  /** Where payload buffers come from and go back to once written. */
  readonly buffers?: BufferRecycler
  readonly limits: FetchLimits
  readonly timeouts: TransferTimeouts
  readonly maxFrame: number
  readonly retry: RetryOptions
  readonly journal: JournalOptions
  /** Staging memory for O_DIRECT chunk writes (undefined: buffered writes). */
  readonly directWrites?: DirectWriteSlots | undefined
  /** Download bandwidth this transfer may use (its own limit, then its fair share). */
  readonly limiter: RateLimiter
  /** Where a finished transfer leaves its open session for the next one to the same peer. */
  readonly sessions?: SessionPool
  /** The transfer's admission place (the engine admitted it before creating the job): told of failed links, given back in cleanup. */
  readonly place?: AdmissionPlace
  /** What to do with a file already at the destination. */
  readonly destination: DestinationPolicy
}

export interface FetchJobHooks {
  onProgress?: (p: TransferProgress) => void
  onRetry?: (info: RetryInfo) => void
}

/**
 * The receiving side of one transfer, split into the steps the transfer
 * machine runs. It owns the session, the part file and the journal, and
 * releases them in `cleanup` whatever state the machine ended in. Local state
 * outlives sessions: after a retry, `resolve` only opens a new session, checks
 * the peer still serves the same header, and fetching continues from the
 * journal's chunk set.
 */
export class FetchJob implements TransferJob {
  readonly ticket: Ticket
  readonly dest: string
  readonly retry: RetryOptions
  readonly #deps: FetchJobDeps
  readonly #hooks: FetchJobHooks
  readonly #progress: ProgressThrottle
  /** Verification failures per chunk, kept across reconnects: a peer cannot reset them by hanging up. */
  readonly #failures = new Map<number, number>()
  #session: RemoteSession | undefined
  #local: LocalTransfer | undefined
  /** Set when the destination already held the content: nothing is fetched or written. */
  #present: PresentState | undefined
  #rehash: Rehasher | undefined
  #resume: ResumeInfo | undefined
  /** This peer served the content's header in this job: a later CONTENT_NOT_FOUND is a restart, not a refusal. */
  #contentSeen = false
  /** A stream to the peer opened in this job: it is there, whatever fails after. */
  #reached = false
  /** Chunk bytes received on sessions already dropped, and the current session's count when adopted. */
  #chunkBytes = 0
  #sessionBase = 0
  /** Verified chunks as last seen, and when that count last grew (or the job began). */
  #chunksSeen = 0
  #lastChunkAt = performance.now()
  /** The part of progressMark() beyond verified chunks; it stops growing once stalled (see there). */
  #soft = 0
  #retries = 0
  #committed = false
  /** The step the machine runs or last ran, settled either way (see cleanup). */
  #running: Promise<void> | undefined
  #cleanup: Promise<void> | undefined

  constructor(deps: FetchJobDeps, ticket: Ticket, dest: string, hooks: FetchJobHooks = {}) {
    this.#deps = deps
    this.ticket = ticket
    this.dest = dest
    this.retry = deps.retry
    this.#hooks = hooks
    this.#progress = new ProgressThrottle(hooks.onProgress)
  }

  get header(): DescriptorHeader | undefined {
    return (this.#local ?? this.#present)?.header
  }

  /** What was found at the destination; undefined until the first connection got the header. */
  get resume(): ResumeInfo | undefined {
    return this.#resume
  }

  get retries(): number {
    return this.#retries
  }

  progress(): TransferProgress | undefined {
    return (this.#local ?? this.#present)?.meter.snapshot()
  }

  /**
   * Verified chunks, plus signs that the peer is up and serving although this transfer's own
   * chunks did not complete: chunk bytes it received (cut before the chunk was whole; repeated
   * chunk frames do not count, see RemoteSession.chunkBytes), and chunks the peer served to this
   * engine's other transfers. On a busy link cut every second or two, a
   * transfer may lose its connection again and again before one chunk completes, while the peer
   * is fine (seen: 1 MB transfers in a four-process mesh with cuts every 0.5–3 s gave up after ten
   * such attempts as the rest completed). Those signs count only until the transfer has gone
   * `retry.maxStallMs` without a verified chunk of its own; then `retry.maxAttempts` more failures
   * without one end it, so a link that always breaks mid-chunk still fails in bounded time.
   */
  progressMark(): number {
    const chunks = this.#local?.journal.chunks ?? 0
    const now = performance.now()
    if (chunks > this.#chunksSeen) {
      this.#chunksSeen = chunks
      this.#lastChunkAt = now
    }
    if (now - this.#lastChunkAt < this.retry.maxStallMs) {
      this.#soft = Math.max(this.#soft, this.#receivedChunkBytes() + (this.#deps.place?.peerVerified() ?? 0))
    }
    return chunks + this.#soft
  }

  #receivedChunkBytes(): number {
    const live = this.#session === undefined ? 0 : this.#session.chunkBytes - this.#sessionBase
    return this.#chunkBytes + live
  }

  /**
   * Until a stream to the peer has opened in this job, a failure that says the peer may not be
   * there (PEER_UNREACHABLE, TIMEOUT) is retried only `retry.maxAttemptsFirstContact` times; then
   * the transfer fails with the error itself, so a wrong address or a sender that is not running
   * is told in about a second. Every other transient failure (a stream cut, TOO_MANY_REQUESTS)
   * came from the peer, and gets `retry.maxAttempts`. Once the peer has served this content's
   * header, CONTENT_NOT_FOUND is retried too: a restarting sender serves nothing until it has
   * indexed the file again.
   */
  canRetry(error: HaulError): boolean {
    return isTransient(error) || (this.#contentSeen && error.code === 'CONTENT_NOT_FOUND')
  }

  attemptLimit(error: HaulError): number {
    return this.#unreached(error)
      ? Math.min(this.retry.maxAttemptsFirstContact, this.retry.maxAttempts)
      : this.retry.maxAttempts
  }

  exhausted(last: HaulError, _attempts: number): HaulError | undefined {
    return this.#unreached(last) ? last : undefined
  }

  /**
   * The peer may not be there at all: nothing reached it in this job and this failure says so
   * (no dial, no answer). Any other failure came over a connection Noise proved was the peer's.
   */
  #unreached(error: HaulError): boolean {
    return !this.#reached && (error.code === 'PEER_UNREACHABLE' || error.code === 'TIMEOUT')
  }

  onRetry(info: RetryInfo): void {
    this.#retries++
    this.#deps.place?.congested()
    this.#dropSession(() => info.error)
    this.#hooks.onRetry?.(info)
  }

  resolve(signal: AbortSignal): Promise<void> {
    return this.#step(this.#resolve(signal))
  }

  fetchChunks(signal: AbortSignal): Promise<void> {
    return this.#step(this.#fetchChunks(signal))
  }

  finalize(signal: AbortSignal): Promise<void> {
    return this.#step(this.#finalize(signal))
  }

  #step(p: Promise<void>): Promise<void> {
    this.#running = p.catch(() => {})
    return p
  }

  async #resolve(signal: AbortSignal): Promise<void> {
    this.#dropSession(() => new StreamClosedError('reconnecting'))
    const header = (await this.#headerOnPooledSession(signal)) ?? (await this.#headerOnNewSession(signal))
    this.#contentSeen = true
    if (this.#local === undefined && this.#present === undefined) {
      const { cid } = this.ticket
      if (await holdsContent(this.dest, cid, header, this.#deps.destination, signal)) {
        this.#present = presentState(header)
        this.#resume = this.#present.resume
      } else await this.#openLocal(header)
    }
    this.#report(true)
  }

  /** The header through a session a finished transfer left open, if there is one. */
  async #headerOnPooledSession(signal: AbortSignal): Promise<DescriptorHeader | undefined> {
    const pooled = this.#deps.sessions?.take(this.ticket.peerId)
    if (pooled === undefined) return undefined
    this.#adopt(pooled)
    try {
      return await fetchHeader(this.#fetchContext(), signal)
    } catch (err) {
      // The peer closed the idle stream as we reused it: that calls for a fresh stream, not a retry.
      if (!(err instanceof StreamClosedError)) throw err
      this.#dropSession(() => err)
      return undefined
    }
  }

  async #headerOnNewSession(signal: AbortSignal): Promise<DescriptorHeader> {
    const { network, timeouts, maxFrame } = this.#deps
    const stream = await network.openStream(this.ticket.peerId, [...this.ticket.addrs], PROTOCOL_ID, {
      signal,
      idleTimeoutMs: timeouts.idleMs,
    })
    this.#reached = true
    this.#adopt(
      RemoteSession.start(stream, {
        maxFrame,
        requestTimeoutMs: timeouts.requestMs,
        closeTimeoutMs: timeouts.closeMs,
        ...(this.#deps.buffers === undefined
          ? {}
          : {
              allocPayload: this.#deps.buffers.take.bind(this.#deps.buffers),
              releasePayload: this.#deps.buffers.give.bind(this.#deps.buffers),
            }),
      }),
    )
    return await fetchHeader(this.#fetchContext(), signal)
  }

  async #fetchChunks(signal: AbortSignal): Promise<void> {
    if (this.#present !== undefined) return
    const { header, part, journal, meter } = this.#ready()
    let failed = true
    try {
      if (this.#rehash !== undefined) {
        await this.#rehash.run(this.#fetchContext(), signal)
        this.#rehash = undefined
        this.#resume = { ...this.#resume!, chunksKept: journal.chunks, bytesKept: journal.bytes }
      }
      const fetcher = new ChunkFetcher(
        this.#fetchContext(),
        header,
        part,
        meter,
        () => {
          this.#deps.place?.chunkVerified()
          this.#report(false)
        },
        journal,
        this.#failures,
      )
      await fetcher.run(signal)
      failed = false
    } finally {
      // Whatever happened, what was verified and written so far becomes durable now.
      const flushed = journal.flush()
      if (failed) await flushed.catch(() => {})
      else await flushed
    }
  }

  async #finalize(_signal: AbortSignal): Promise<void> {
    if (this.#present === undefined) {
      const { header, part, journal, meter } = this.#ready()
      assertComplete(header, journal, meter)
      await part.commit()
      this.#committed = true
      // After the rename: a crash in between leaves a journal with no part file, which the next fetch discards.
      await journal.remove()
    }
    const session = this.#session
    this.#session = undefined
    if (this.#deps.sessions !== undefined && session !== undefined)
      this.#deps.sessions.give(this.ticket.peerId, session)
    else await session?.close()
    this.#report(true)
  }

  result(): FetchResult {
    const { header, meter } = this.#present ?? this.#ready()
    return transferResult(this.dest, { header, meter, resume: this.#resume! }, this.#retries)
  }

  /**
   * Releases the stream, the journal (flushed) and the part file; both files stay unless the
   * transfer completed. First waits for the step the machine left (a cancel leaves it running,
   * its signal aborted): it ends without waiting on the peer, and then nothing writes to a file
   * closed here, nor opens one after. A session still held (the transfer failed or was
   * cancelled; a completed one gave it back in finalize) is reset: a graceful close would wait on
   * a peer that may be hostile or gone. Called by both the transfer's end and `engine.stop()`:
   * the second call shares the first.
   */
  cleanup(): Promise<void> {
    this.#cleanup ??= this.#release()
    return this.#cleanup
  }

  async #release(): Promise<void> {
    try {
      await this.#running
      this.#dropSession(() => new StreamClosedError('the transfer ended'))
      if (this.#committed || this.#local === undefined) return
      await this.#local.journal.close()
      await this.#local.part.close()
    } finally {
      // Only once the stream and files are closed: the place bounds what is open.
      this.#deps.place?.release()
    }
  }

  async #openLocal(header: DescriptorHeader): Promise<void> {
    const local = await openLocalTransfer(this.dest, this.ticket.cid, header, this.#deps)
    this.#local = local
    this.#resume = local.resume
    this.#rehash = local.rehasher
  }

  #adopt(session: RemoteSession): void {
    this.#session = session
    this.#sessionBase = session.chunkBytes
  }

  /** `why` is a factory: most calls find no session, and an error costs a stack trace. */
  #dropSession(why: () => HaulError): void {
    const s = this.#session
    if (s === undefined) return
    this.#chunkBytes += s.chunkBytes - this.#sessionBase
    this.#session = undefined
    // Reset, not close: a close would wait on a peer that may be gone or stalled.
    s.abort(why())
  }

  #fetchContext(): FetchContext {
    if (this.#session === undefined) throw new InternalError('transfer used before it resolved')
    return {
      cid: this.ticket.cid,
      session: this.#session,
      pool: this.#deps.pool,
      budget: this.#deps.budget,
      ...(this.#deps.buffers === undefined ? {} : { buffers: this.#deps.buffers }),
      limits: this.#deps.limits,
      limiter: this.#deps.limiter,
    }
  }

  #ready(): LocalTransfer {
    if (this.#local === undefined) throw new InternalError('transfer used before it resolved')
    return this.#local
  }

  #report(force: boolean): void {
    this.#progress.report((this.#local ?? this.#present)?.meter, force)
  }
}
