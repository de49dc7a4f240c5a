import { type ErrorCode, type HaulError, isHaulError } from '../errors.ts'

/**
 * How a transfer rides out a lost connection, a reset stream, a restarting
 * sender or a silent peer: it goes to `retrying`, waits an exponentially
 * growing, jittered delay, opens a new session and continues from what is
 * already verified on disk. Engine option `retry`; defaults and ranges:
 * src/engine/config/table.ts.
 */
export interface RetryOptions {
  /**
   * Failed attempts in a row, without progress in between, after which the
   * transfer fails with RETRIES_EXHAUSTED (its part file and journal stay on
   * disk for a later resume). Progress is a verified chunk; also, until the
   * transfer has gone `maxStallMs` without one, chunk bytes arriving (cut
   * before the chunk completed) and chunks its peer serves to this engine's
   * other transfers. So a long transfer survives any number of cuts as long as
   * its peer keeps serving. 1 disables retrying.
   */
  maxAttempts: number
  /**
   * Attempts allowed, before the peer has said hello on a stream in this fetch,
   * for failures that say it may not be there (PEER_UNREACHABLE, TIMEOUT). A
   * wrong ticket or a sender that is not running fails after these with its
   * own error, in about a second, instead of after the whole backoff; a blip
   * at the first dial is still ridden out. Not when this engine heard from the
   * peer within `maxStallMs` (another fetch got its hello): an outage then.
   * Also the TIMEOUTs allowed while no
   * provider has sent a chunk byte in this fetch (a peer that says hello and
   * then nothing). At most maxAttempts.
   */
  maxAttemptsFirstContact: number
  /** Delay before the first retry; doubles with each failure in a row. */
  baseDelayMs: number
  /** Ceiling of the delay. */
  maxDelayMs: number
  /**
   * How long a transfer may go without a verified chunk of its own while its failures still do
   * not count because its peer is visibly serving (see `maxAttempts`). Bounds a link that always
   * breaks mid-chunk: it fails after this, then `maxAttempts` failures. Also how long an outage
   * is ridden out: once a provider was reached and the transfer progressed, PEER_UNREACHABLE and
   * TIMEOUT are retried whatever their count until this long passes without progress (for a
   * transfer that never reached it, until this long after this engine last heard from it); so is a
   * provider's CONTENT_PREPARING (it is indexing the file again), from the fetch's start.
   */
  maxStallMs: number
}

/**
 * Delay before retry number `attempt` (1-based): the exponential cap
 * min(max, base * 2^(attempt-1)), scaled by a random factor in [0.5, 1] so
 * receivers cut off together do not all come back at the same instant, while
 * each still waits at least half the cap.
 */
export function backoffDelay(attempt: number, o: RetryOptions, random: () => number = Math.random): number {
  const cap = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.min(attempt - 1, 52))
  return Math.round(cap * (0.5 + 0.5 * random()))
}

/**
 * Failures a new connection may cure. Everything else (content not published
 * or changed, repeated verification failure, proofs, protocol violations, disk
 * errors, bad tickets, cancellation) fails the transfer at once.
 */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'STREAM_CLOSED',
  'PEER_UNREACHABLE',
  'TIMEOUT',
  'TOO_MANY_REQUESTS',
  // A restarted sender indexing the file again: served (or CONTENT_CHANGED) once it is done.
  'CONTENT_PREPARING',
  // A new circuit through the relay carries the next chunks (the receiver drops the spent one).
  'CIRCUIT_LIMIT',
  // A frame cut short by the end of the stream: what a dropped connection looks like mid-frame.
  'FRAME_TRUNCATED',
])

export function isTransient(err: unknown): boolean {
  return isHaulError(err) && TRANSIENT.has(err.code)
}

/** What the machine reports on entering `retrying`. */
export interface RetryInfo {
  /** Failures in a row without progress, this one included (1-based). */
  readonly attempt: number
  /**
   * The failures in a row allowed; Infinity while an outage is ridden out (a peer reached
   * earlier is away: retried until `retry.maxStallMs` pass without progress).
   */
  readonly maxAttempts: number
  /** How long the transfer waits before reconnecting. */
  readonly delayMs: number
  readonly error: HaulError
}
