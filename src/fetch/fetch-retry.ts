/**
 * How a fetch meets the transfer machine's retry rule (src/transfer/transfer-machine.ts): what
 * counts as progress between failures, which failures a reconnect to every provider may cure,
 * and how many attempts a failure gets before any provider was reached. FetchJob answers the
 * machine through it; what it judges by lives on the providers' links and in the journal.
 */
import { type HaulError, PeerUnreachableError, TooManyRequestsError } from '../errors.ts'
import type { AdmissionPlace } from '../resources/admission.ts'
import { isTransient, type RetryOptions } from '../transfer/retry.ts'
import type { ProviderSet } from './provider-set.ts'
import type { RecentPeers } from './recent-peers.ts'

/** What providers that do not have the content say (or a node without haul): others may. */
const LACKING: ReadonlySet<string> = new Set(['CONTENT_NOT_FOUND', 'NO_PROVIDER', 'UNSUPPORTED_VERSION'])

/** The fetch's admission place and provider search (see FetchJobDeps), and the engine's RecentPeers. */
export interface RetryDeps {
  readonly place?: AdmissionPlace | undefined
  readonly stillLooking?: (() => boolean) | undefined
  readonly recentPeers?: RecentPeers | undefined
}

export class FetchRetry {
  readonly #retry: RetryOptions
  readonly #providers: ProviderSet
  readonly #deps: RetryDeps
  /** A provider served this content's header in this job: a later CONTENT_NOT_FOUND is a restart, not a refusal. */
  contentSeen = false
  /** Verified chunks as last seen, and when that count last grew (or the job began). */
  #chunksSeen = 0
  #lastChunkAt = performance.now()
  /** progressMark's last value, and when it last grew: the start of an outage, if one is on. */
  #mark = 0
  #markAt = performance.now()
  /** The part of progressMark() beyond verified chunks; it stops growing once stalled (see there). */
  #soft = 0

  constructor(retry: RetryOptions, providers: ProviderSet, deps: RetryDeps) {
    this.#retry = retry
    this.#providers = providers
    this.#deps = deps
  }

  /**
   * Verified chunks (`chunks`, the journal's count), plus signs that the providers are up and
   * serving although this transfer's own chunks did not complete: chunk bytes received (cut
   * before the chunk was whole; repeated chunk frames do not count, see RemoteSession.chunkBytes),
   * and chunks the first provider served to this engine's other transfers. On a busy link cut
   * every second or two, a transfer may lose its connection again and again before one chunk
   * completes, while the peer is fine (seen: 1 MB transfers in a four-process mesh with cuts every
   * 0.5–3 s gave up after ten such attempts as the rest completed). Those signs count only until
   * the transfer has gone `retry.maxStallMs` without a verified chunk of its own; then
   * `retry.maxAttempts` more failures without one end it, so a link that always breaks mid-chunk
   * still fails in bounded time.
   */
  progressMark(chunks: number): number {
    const now = performance.now()
    if (chunks > this.#chunksSeen) {
      this.#chunksSeen = chunks
      this.#lastChunkAt = now
    }
    if (now - this.#lastChunkAt < this.#retry.maxStallMs) {
      const received = this.#providers.chunkBytes()
      this.#soft = Math.max(this.#soft, received + (this.#deps.place?.peerVerified() ?? 0))
    }
    const mark = chunks + this.#soft
    if (mark > this.#mark) {
      this.#mark = mark
      this.#markAt = now
    }
    return mark
  }

  /**
   * Transient failures; CONTENT_NOT_FOUND once a provider has served this content's header (a
   * restarting sender serves nothing until it has indexed the file again); NO_PROVIDER when
   * a provider was lost to the network (not banned, not merely lacking the chunk): reconnecting
   * to everyone may cure them; and these, or UNSUPPORTED_VERSION (a DHT record naming a node
   * without haul), while a search may still find other providers.
   */
  canRetry(error: HaulError): boolean {
    if (isTransient(error)) return true
    if (this.contentSeen && error.code === 'CONTENT_NOT_FOUND') return true
    if (LACKING.has(error.code) && this.#deps.stillLooking?.() === true) return true
    return error.code === 'NO_PROVIDER' && this.#providers.anyGone()
  }

  /**
   * Until a provider has said hello on a stream in this job, a failure that says the providers
   * may not be there (PEER_UNREACHABLE, TIMEOUT) is retried only `retry.maxAttemptsFirstContact`
   * times; then the transfer fails with the error itself, so a wrong address or a sender that is
   * not running is told in about a second, and a peer that takes streams and stays silent in
   * three request timeouts. Unless this engine heard from a provider within `retry.maxStallMs`
   * (another fetch got its hello): then the peer is not absent but away, an outage (a fetch
   * queued while its sender restarts starts while it is down). A peer that said hello (and
   * perhaps the header) and then let a request time out, with no chunk byte from any provider in
   * this fetch, gets as many: saying hello is not serving (counted against `retry.maxAttempts`,
   * ten request timeouts and their back-off hold the fetch over six minutes). A peer whose
   * addresses another peer answers now (PeerUnreachableError.answeredBy) is gone, not away: as
   * many, whatever was heard of it before. Every other
   * transient failure (a stream cut, TOO_MANY_REQUESTS) came from a peer, and gets
   * `retry.maxAttempts`.
   */
  attemptLimit(error: HaulError): number {
    const replaced = error instanceof PeerUnreachableError && error.answeredBy !== undefined
    if ((this.#unreached(error) && !this.#heardLately()) || this.#neverServed(error) || replaced) {
      return Math.min(this.#retry.maxAttemptsFirstContact, this.#retry.maxAttempts)
    }
    return this.#inOutage(error) || this.#preparing(error) || this.#waitingForRelay(error)
      ? Number.POSITIVE_INFINITY
      : this.#retry.maxAttempts
  }

  /**
   * A provider says it is indexing the file again (CONTENT_PREPARING: a sender restarted on a
   * large file takes minutes): asked again however many attempts it takes until
   * `retry.maxStallMs` pass without progress, as an outage is; a peer that says so for ever is
   * still given up on.
   */
  #preparing(error: HaulError): boolean {
    return error.code === 'CONTENT_PREPARING' && performance.now() - this.#markAt < this.#retry.maxStallMs
  }

  /**
   * The only way to a provider is a relay with no circuit free (TooManyRequestsError.relayFull):
   * one frees up when a transfer through it ends, which on a slow relay takes minutes. Asked again
   * however many attempts it takes until `retry.maxStallMs` pass without progress, as an outage
   * is; a relay full for longer than that is given up on.
   */
  #waitingForRelay(error: HaulError): boolean {
    return (
      error instanceof TooManyRequestsError &&
      error.relayFull &&
      performance.now() - this.#markAt < this.#retry.maxStallMs
    )
  }

  /**
   * The network fails (PEER_UNREACHABLE, TIMEOUT: a link down, a sender restarting) after a
   * provider was reached: this transfer made progress, or this engine heard from a provider (see
   * attemptLimit). An outage, retried however many attempts it takes until `retry.maxStallMs`
   * pass without progress and without a word from the providers. Counted in attempts, a link
   * down for a minute and a half spent them all (ten attempts, their back-off ~100 s).
   */
  #inOutage(error: HaulError): boolean {
    if (error.code !== 'PEER_UNREACHABLE' && error.code !== 'TIMEOUT') return false
    const progressed = this.#mark > 0 && performance.now() - this.#markAt < this.#retry.maxStallMs
    return progressed || this.#heardLately()
  }

  /**
   * A request timed out after a provider said hello in this job, and no provider has sent a byte
   * of a chunk in this fetch (chunks kept from an earlier run do not count): the peer answers
   * with nothing to fetch, however lately it said hello. An outage after progress is told apart
   * by the bytes that came before it.
   */
  #neverServed(error: HaulError): boolean {
    return error.code === 'TIMEOUT' && this.#providers.chunkBytes() === 0 && this.#providers.reached()
  }

  /** This engine heard from one of the providers (a hello, a header) within `retry.maxStallMs`. */
  #heardLately(): boolean {
    const recent = this.#deps.recentPeers
    if (recent === undefined) return false
    for (const id of this.#providers.links.keys()) {
      if (recent.heardWithin(id, this.#retry.maxStallMs)) return true
    }
    return false
  }

  /** The failure itself when no provider was reached; undefined otherwise (RETRIES_EXHAUSTED). */
  exhausted(last: HaulError): HaulError | undefined {
    return this.#unreached(last) ? last : undefined
  }

  /**
   * No provider was reached in this job and this failure says so (no dial, no answer). Any other
   * failure came over a connection Noise proved was the peer's.
   */
  #unreached(error: HaulError): boolean {
    const reached = this.#providers.reached()
    return !reached && (error.code === 'PEER_UNREACHABLE' || error.code === 'TIMEOUT')
  }
}
