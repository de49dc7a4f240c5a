/** Peers with a series of their own, per direction; the rest add up in `peer="other"`. */
export const PEER_SERIES = 16

/** A peer with no bytes for this long gives its series up to the next new peer. */
export const PEER_IDLE_MS = 60_000

/** The label of the bytes of every peer without a series of its own. */
export const OTHER_PEER = 'other'

/**
 * Bytes per peer with a bounded label set: at most `cap` peers have a series, taken by the first
 * peers that move bytes while one is free; others add to `other`. A labelled peer idle for
 * `idleMs` gives its series up (its bytes move to `other`) when a new peer needs one. Every
 * series only grows or disappears, so `rate()` over it is sound, and the series add up to
 * the total. A peer is not moved out of `other` once there: `other` would have to shrink.
 */
export class PeerCounters {
  readonly #peers = new Map<string, { bytes: number; last: number }>()
  #other = 0

  readonly cap: number
  readonly idleMs: number
  readonly now: () => number

  constructor(cap = PEER_SERIES, idleMs = PEER_IDLE_MS, now: () => number = () => performance.now()) {
    this.cap = cap
    this.idleMs = idleMs
    this.now = now
  }

  add(peerId: string, bytes: number): void {
    if (bytes <= 0) return
    const t = this.now()
    let p = this.#peers.get(peerId)
    if (p === undefined) {
      if (this.#peers.size >= this.cap) this.#evictIdle(t)
      if (this.#peers.size >= this.cap) {
        this.#other += bytes
        return
      }
      p = { bytes: 0, last: t }
      this.#peers.set(peerId, p)
    }
    p.bytes += bytes
    p.last = t
  }

  /** Every series: the labelled peers, then `other`. */
  series(): Array<[peer: string, bytes: number]> {
    const out: Array<[string, number]> = [...this.#peers].map(([id, p]) => [id, p.bytes])
    out.push([OTHER_PEER, this.#other])
    return out
  }

  #evictIdle(t: number): void {
    let oldest: string | undefined
    let at = t
    for (const [id, p] of this.#peers) {
      if (p.last < at) {
        at = p.last
        oldest = id
      }
    }
    if (oldest === undefined || t - at < this.idleMs) return
    this.#other += this.#peers.get(oldest)!.bytes
    this.#peers.delete(oldest)
  }
}
