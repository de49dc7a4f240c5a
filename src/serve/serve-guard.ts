import { type HaulError, TimeoutError, TooManyRequestsError } from '../errors.ts'
import type { FrameStream } from '../net/stream-io.ts'
import type { PeerShare } from './serve-shares.ts'

/** setTimeout's longest delay; a longer configured bound means "practically never". */
const MAX_TIMER_MS = 2_147_483_647
/** The stall rules look at the stream this often (a quarter of the shorter bound, at least this). */
const MIN_STALL_POLL_MS = 100
/**
 * A stalled stream of a peer over its share, while others wait for the budget, is reset after
 * this part of `stallTimeoutMs` (2 s of 10): long enough that a stream whose window opens again
 * within a round trip or a busy moment keeps going, short enough that a newcomer waits little.
 */
const SHED_DIVISOR = 5

export interface ServeGuardLimits {
  readonly frameTimeoutMs: number
  readonly maxPartialBytesPerPeer: number
  readonly stallTimeoutMs: number
}

/**
 * The serving side's bounds on what one stream's peer can make it hold, whatever it sends:
 * - an unfinished request frame must be whole within `frameTimeoutMs` of its first byte;
 * - the unfinished frames of all of a peer's streams together stay within `maxPartialBytesPerPeer`;
 * - a stream with a reply waiting to be sent whose peer takes none of it for `stallTimeoutMs`
 *   (the stream's write stall, which inbound frames do not reset) is reset at once: its peer
 *   cannot be told, and its read-ahead goes back to the budget. When its peer holds more than
 *   its share of the serving budget while someone else waits for memory (`PeerShare.mustShed`),
 *   already after `stallTimeoutMs / 5`.
 * A broken bound calls `fail` with a TimeoutError or TooManyRequestsError (or throws it from
 * `afterRead`); the session ends the stream with it.
 */
export class ServeGuard {
  readonly #stream: FrameStream
  readonly #share: PeerShare
  readonly #limits: ServeGuardLimits
  readonly #fail: (err: HaulError) => void
  /** Unfinished frame bytes this stream holds, as counted in the peer's share. */
  #pending = 0
  #frameTimer: NodeJS.Timeout | undefined
  readonly #stallTimer: NodeJS.Timeout
  #closed = false

  constructor(
    stream: FrameStream,
    share: PeerShare,
    limits: ServeGuardLimits,
    fail: (err: HaulError) => void,
  ) {
    this.#stream = stream
    this.#share = share
    this.#limits = limits
    this.#fail = fail
    const shedAfter = Math.ceil(limits.stallTimeoutMs / SHED_DIVISOR)
    const poll = Math.max(MIN_STALL_POLL_MS, Math.floor(shedAfter / 4))
    this.#stallTimer = setInterval(this.#checkStall, Math.min(poll, MAX_TIMER_MS))
    this.#stallTimer.unref()
  }

  /**
   * After each read and the frames it completed: `pending`, the decoder's unfinished bytes;
   * `completed`, whether any frame finished (then what is pending is a new frame). Throws
   * TooManyRequestsError when the peer's streams hold more unfinished bytes than allowed.
   */
  afterRead(pending: number, completed: boolean): void {
    if (this.#closed) return
    const max = this.#limits.maxPartialBytesPerPeer
    const total = this.#share.partialBytes - this.#pending + pending
    if (total > max) {
      // The reader drops its decoder as this throws: none of this stream's bytes stay counted.
      this.close()
      throw new TooManyRequestsError(
        `this peer would hold ${total} bytes of unfinished request frames here, over ${max}: finish them first`,
      )
    }
    this.#share.partialBytes = total
    this.#pending = pending
    if (pending === 0) {
      clearTimeout(this.#frameTimer)
      this.#frameTimer = undefined
    } else if (completed || this.#frameTimer === undefined) {
      clearTimeout(this.#frameTimer)
      const ms = this.#limits.frameTimeoutMs
      this.#frameTimer = setTimeout(
        () =>
          this.#fail(new TimeoutError(`a request frame was not completed within ${ms} ms of its first byte`)),
        Math.min(ms, MAX_TIMER_MS),
      )
      this.#frameTimer.unref()
    }
  }

  /** The stream's session is over: stop the timers and give back what it counted. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#frameTimer)
    clearInterval(this.#stallTimer)
    this.#share.partialBytes -= this.#pending
    this.#pending = 0
  }

  readonly #checkStall = (): void => {
    if (this.#closed) return
    const ms = this.#limits.stallTimeoutMs
    // The kernel is asked (see FrameStream.writeStalledMs) well before the shorter bound.
    const stalled = this.#stream.writeStalledMs(Math.ceil(ms / SHED_DIVISOR / 2))
    let err: HaulError | undefined
    if (stalled >= ms) {
      err = new TimeoutError(
        `the peer took none of our replies for ${ms} ms: stream reset, its read-ahead given back`,
      )
    } else if (stalled >= Math.ceil(ms / SHED_DIVISOR) && this.#share.mustShed()) {
      err = new TooManyRequestsError(
        `the peer took none of our replies for ${Math.round(stalled)} ms while holding more than its share of the serving budget, which others wait for: stream reset`,
      )
    }
    if (err === undefined) return
    this.#stream.abort(err)
    this.#fail(err)
  }
}
