import type { Connection } from '@libp2p/interface'
import type { HaulError } from '../errors.ts'
import { Slots } from '../util/slots.ts'
import type { FrameStream } from './stream-io.ts'

/** What the network keeps about one peer while any of it is in use. */
export interface PeerState {
  /** Bounds the streams we open to the peer; opens beyond it wait in a bounded line. */
  readonly slots: Slots
  readonly outbound: Set<FrameStream>
  readonly inbound: Set<FrameStream>
  /** Streams over the inbound limit being turned away. */
  refusing: number
  /** The dial in flight to the peer, shared by concurrent opens. */
  dialing: Promise<Connection> | undefined
}

/**
 * The network actor's (./network.ts) per-peer stream bookkeeping, keyed by peer id: the slots of
 * each peer's outbound limit, the streams handed out in both directions, the refusals and the dial
 * under way. Both directions count streams here, so this table is what tells the open streams
 * and what shutdown aborts. A peer's entry is dropped once nothing of it is in use, so the table
 * does not grow with every peer ever seen.
 */
export class PeerStreams {
  readonly #peers = new Map<string, PeerState>()
  readonly #maxStreamsPerPeer: number
  readonly #maxQueuedOpensPerPeer: number

  constructor(maxStreamsPerPeer: number, maxQueuedOpensPerPeer: number) {
    this.#maxStreamsPerPeer = maxStreamsPerPeer
    this.#maxQueuedOpensPerPeer = maxQueuedOpensPerPeer
  }

  /** The entry of peer `key`, made on first use. */
  of(key: string): PeerState {
    let s = this.#peers.get(key)
    if (s === undefined) {
      s = {
        slots: new Slots(this.#maxStreamsPerPeer, this.#maxQueuedOpensPerPeer),
        outbound: new Set(),
        inbound: new Set(),
        refusing: 0,
        dialing: undefined,
      }
      this.#peers.set(key, s)
    }
    return s
  }

  /** Drops the entry of peer `key` when nothing of it is in use. */
  forgetIfIdle(key: string): void {
    const s = this.#peers.get(key)
    if (s === undefined) return
    const busy = s.inbound.size > 0 || s.outbound.size > 0 || s.refusing > 0 || s.dialing !== undefined
    if (s.slots.idle && !busy) {
      this.#peers.delete(key)
    }
  }

  /** Streams handed out (both directions) that are not finished yet, with `peer` or all. */
  openCount(peer?: string): number {
    if (peer !== undefined) {
      const s = this.#peers.get(peer)
      return s === undefined ? 0 : s.outbound.size + s.inbound.size
    }
    let n = 0
    for (const s of this.#peers.values()) n += s.outbound.size + s.inbound.size
    return n
  }

  /** Fails every waiting open and aborts every stream handed out, with `err`. */
  abortAll(err: HaulError): void {
    for (const s of this.#peers.values()) {
      s.slots.rejectWaiters(err)
      for (const fs of [...s.outbound, ...s.inbound]) fs.abort(err)
    }
  }
}
