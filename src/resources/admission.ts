import type { HaulError } from '../errors.ts'
import { Slots } from '../util/slots.ts'

export interface AdmissionLimits {
  /** Transfers admitted at once across all peers. */
  readonly maxActive: number
  /** Transfers admitted at once from one peer. */
  readonly maxActivePerPeer: number
  /** Transfers that may wait per peer; one more fails with TooManyRequestsError. */
  readonly maxQueuedPerPeer: number
}

/** A transfer's place in the lines: given back once; it tells its peer's line how the link fares. */
export interface AdmissionPlace {
  /** Gives the place back. Idempotent. */
  release(): void
  /** The transfer's link to the peer failed (cut, reset, stalled): fewer of its transfers run at once. */
  congested(): void
  /** The transfer completed: one more of the peer's transfers may run at once. */
  completed(): void
  /** The transfer verified a chunk from the peer. */
  chunkVerified(): void
  /** Chunks this engine's transfers verified from the peer since its line opened: it is up and serving. */
  peerVerified(): number
}

/** A peer's line: its slots, whose limit moves between 1 and maxActivePerPeer, and when it last shrank. */
interface PeerLine {
  readonly slots: Slots
  shrunkAt: number
  verified: number
}

/** The failures of one cut (every transfer on the connection fails within moments) shrink a line once. */
export const CONGESTION_WINDOW_MS = 1_000

/**
 * Which fetches may hold resources now. An admitted transfer opens a stream,
 * its part file and its journal, and gets an actor; the others wait as plain
 * records (a ticket, a path, a promise), so the cost of a queued transfer does
 * not depend on its size and thousands of them cost little.
 *
 * A place is taken from the peer's line first, then from the engine's: a
 * transfer waiting for an engine-wide place never holds one, so a busy peer
 * cannot starve the others of engine places, and both lines are FIFO.
 *
 * How many of a peer's transfers run at once adapts to its link, additive increase and
 * multiplicative decrease as in TCP: a failed link (a cut, a reset, a stall) halves it, at most
 * once per CONGESTION_WINDOW_MS, and each completed transfer adds one, up to maxActivePerPeer.
 * On a link cut every second or two, thirty transfers sharing it each got too little between
 * cuts to complete a chunk, and some gave up; fewer at a time each get enough. Nobody running
 * is stopped: a smaller limit admits no one new until enough have finished.
 */
export class Admission {
  readonly limits: AdmissionLimits
  readonly #global: Slots
  readonly #perPeer = new Map<string, PeerLine>()

  constructor(limits: AdmissionLimits) {
    this.limits = limits
    this.#global = new Slots(limits.maxActive)
  }

  /** Transfers holding a place now. */
  get active(): number {
    return this.#global.active
  }

  /** Transfers waiting for a place (per-peer or engine-wide). */
  get waiting(): number {
    let n = this.#global.waiting
    for (const l of this.#perPeer.values()) n += l.slots.waiting
    return n
  }

  /** How many of `peer`'s transfers may run at once now. */
  peerLimit(peer: string): number {
    return this.#perPeer.get(peer)?.slots.limit ?? this.limits.maxActivePerPeer
  }

  /** Waits for a place. */
  async acquire(peer: string, signal: AbortSignal): Promise<AdmissionPlace> {
    let line = this.#perPeer.get(peer)
    if (line === undefined) {
      line = {
        slots: new Slots(this.limits.maxActivePerPeer, this.limits.maxQueuedPerPeer),
        shrunkAt: Number.NEGATIVE_INFINITY,
        verified: 0,
      }
      this.#perPeer.set(peer, line)
    }
    const held = line
    try {
      await held.slots.acquire({ signal, what: `transfers from peer ${peer}` })
    } catch (err) {
      this.#forget(peer, held)
      throw err
    }
    try {
      await this.#global.acquire({ signal, what: 'transfers' })
    } catch (err) {
      held.slots.release()
      this.#forget(peer, held)
      throw err
    }
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.#global.release()
        held.slots.release()
        this.#forget(peer, held)
      },
      congested: () => {
        const now = performance.now()
        if (now - held.shrunkAt < CONGESTION_WINDOW_MS) return
        held.shrunkAt = now
        held.slots.setLimit(Math.max(1, Math.floor(held.slots.limit / 2)))
      },
      completed: () => {
        held.slots.setLimit(Math.min(this.limits.maxActivePerPeer, held.slots.limit + 1))
      },
      chunkVerified: () => {
        held.verified++
      },
      peerVerified: () => held.verified,
    }
  }

  /** Fails every waiting transfer (engine shutdown); places held stay held until given back. */
  rejectWaiters(err: HaulError): void {
    for (const l of this.#perPeer.values()) l.slots.rejectWaiters(err)
    this.#global.rejectWaiters(err)
  }

  /** Peer lines are dropped when unused, so the map does not grow with every peer ever fetched from. */
  #forget(peer: string, held: PeerLine): void {
    if (held.slots.idle && this.#perPeer.get(peer) === held) this.#perPeer.delete(peer)
  }
}
