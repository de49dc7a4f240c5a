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

/**
 * Which fetches may hold resources now. An admitted transfer opens a stream,
 * its part file and its journal, and gets an actor; the others wait as plain
 * records (a ticket, a path, a promise), so the cost of a queued transfer does
 * not depend on its size and thousands of them cost little.
 *
 * A place is taken from the peer's line first, then from the engine's: a
 * transfer waiting for an engine-wide place never holds one, so a busy peer
 * cannot starve the others of engine places, and both lines are FIFO.
 */
export class Admission {
  readonly limits: AdmissionLimits
  readonly #global: Slots
  readonly #perPeer = new Map<string, Slots>()

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
    for (const s of this.#perPeer.values()) n += s.waiting
    return n
  }

  /** Waits for a place; resolves to the function that gives it back (idempotent). */
  async acquire(peer: string, signal: AbortSignal): Promise<() => void> {
    let slots = this.#perPeer.get(peer)
    if (slots === undefined) {
      slots = new Slots(this.limits.maxActivePerPeer, this.limits.maxQueuedPerPeer)
      this.#perPeer.set(peer, slots)
    }
    const held = slots
    try {
      await held.acquire({ signal, what: `transfers from peer ${peer}` })
    } catch (err) {
      this.#forget(peer, held)
      throw err
    }
    try {
      await this.#global.acquire({ signal, what: 'transfers' })
    } catch (err) {
      held.release()
      this.#forget(peer, held)
      throw err
    }
    let released = false
    return () => {
      if (released) return
      released = true
      this.#global.release()
      held.release()
      this.#forget(peer, held)
    }
  }

  /** Fails every waiting transfer (engine shutdown); places held stay held until given back. */
  rejectWaiters(err: HaulError): void {
    for (const s of this.#perPeer.values()) s.rejectWaiters(err)
    this.#global.rejectWaiters(err)
  }

  /** Peer lines are dropped when unused, so the map does not grow with every peer ever fetched from. */
  #forget(peer: string, held: Slots): void {
    if (held.idle && this.#perPeer.get(peer) === held) this.#perPeer.delete(peer)
  }
}
