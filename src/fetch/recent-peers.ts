/** Peers remembered as heard from; beyond this the least recently heard go. */
export const MAX_RECENT_PEERS = 1024

/**
 * When this engine last heard from each peer it fetches from: a hello on a new stream, or a
 * header answered (a pooled stream says no second hello). A fetch that never reached its
 * provider itself (it waited in line while the sender went away, or started while it restarts)
 * is in an outage, not facing an absent peer, when another fetch of this engine heard from that
 * provider within `retry.maxStallMs` (FetchRetry), and is not given up on after the few
 * attempts first contact gets. At most MAX_RECENT_PEERS, least recently heard out: a peer
 * forgotten is one heard from long ago, and its fetches take it for absent as at first contact.
 */
export class RecentPeers {
  /** Peer id → performance.now() of the last time it was heard from; least recent first. */
  readonly #heardAt = new Map<string, number>()

  heard(peerId: string): void {
    this.#heardAt.delete(peerId)
    this.#heardAt.set(peerId, performance.now())
    if (this.#heardAt.size > MAX_RECENT_PEERS) this.#heardAt.delete(this.#heardAt.keys().next().value!)
  }

  /** `peerId` was heard from less than `ms` ago. */
  heardWithin(peerId: string, ms: number): boolean {
    const at = this.#heardAt.get(peerId)
    return at !== undefined && performance.now() - at < ms
  }

  get size(): number {
    return this.#heardAt.size
  }
}
