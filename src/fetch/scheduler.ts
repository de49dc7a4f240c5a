import { InvalidArgumentError } from '../errors.ts'
import { Bitset, type Have, holds } from './have.ts'
import { PeerPipeline, type PeerReport, pipelineTarget } from './peer-pipeline.ts'

/**
 * DEV NOTES — which chunk to ask which peer for, for one multi-peer transfer.
 *
 * Pure bookkeeping, no I/O and no clock of its own (callers pass `now`), so it
 * is tested on its own. The coordinator asks `pick(peer)` whenever a peer has
 * room in its pipeline, and reports what happened to every chunk it asked for.
 *
 * - Window: chunks are chosen among [low, low + windowChunks), `low` being the
 *   lowest chunk not yet verified. It bounds the work per pick, the leaf pages
 *   the fetcher must hold, and keeps the part file's writes local.
 * - Rarest first: inside the window, among chunks nobody is fetching that the
 *   peer holds, those held by the fewest live peers go first, then lowest index
 *   (or, with `tieSeed`, an order of the fetch's own). With only full seeders
 *   that is plain file order.
 * - Proportional pipelines: a peer may have `target(peer)` bytes in flight,
 *   its share of `windowBytes` by measured rate (./peer-pipeline.ts).
 * - Endgame: once every chunk still missing is in flight, an idle peer gets
 *   single-chunk duplicates of chunks in flight elsewhere (each chunk at most
 *   `endgamePeers` peers at once); the first verified copy wins and the caller
 *   cancels the others. Copies that still arrive count as duplicate bytes.
 *   A partial peer gets such copies earlier, as soon as every missing chunk it
 *   holds is in flight elsewhere: receivers of one seeder otherwise wait in its
 *   queue for chunks another receiver could give them at once (50 receivers of
 *   32 MiB, the seeder at 0.5 MiB/s: done in 247 and 272 s against 296 and 319 s
 *   without, for 67–87 MiB of duplicates among them).
 * - Bad peers: a chunk failing verification goes back to the pool, not to that
 *   peer if another live peer holds it; after `maxPeerFailures` failures the
 *   peer is dropped for this content. A stall (request timeout) costs the peer
 *   its in-flight chunks and half its measured rate.
 *
 * Bounds: two bits per chunk (verified, and a scratch bit), per peer a have
 * bitset unless it is complete, and maps keyed by in-flight chunks (at most
 * `windowBytes` / smallest chunk, plus endgame copies) or failed ones (cleared
 * when the chunk is verified).
 */

export interface SchedulerOptions {
  readonly leafCount: number
  /** Chunks considered per pick (rarest first inside it). */
  readonly windowChunks: number
  /** Bytes in flight across all peers, shared out by rate. */
  readonly windowBytes: number
  /** Each live peer may always have this much in flight. */
  readonly minPipelineBytes: number
  /** Most peers one chunk is requested from at once, in the endgame. 1 turns the endgame off. */
  readonly endgamePeers: number
  /** Verification failures after which a peer is dropped for this content. */
  readonly maxPeerFailures: number
  /**
   * Breaks ties between equally rare chunks in an order of this fetch's own (a permutation
   * seeded by it) instead of file order, while partial peers take part. Receivers that start
   * together from one seeder then fetch different chunks first, and have something to give each
   * other; in file order they all hold the same chunks at the same time. 0: file order.
   * @default 0
   */
  readonly tieSeed?: number
}

/** The chunks `pick` hands one peer to request next, and their total bytes. */
export interface ChunkPick {
  readonly indices: number[]
  readonly bytes: number
  /** Endgame copies of chunks already in flight at another peer (always one chunk). */
  readonly duplicate: boolean
}

export class SwarmScheduler {
  readonly o: SchedulerOptions
  readonly #done: Bitset
  #doneCount = 0
  #low = 0
  readonly #peers = new Map<string, PeerPipeline>()
  /** In-flight chunk → peers asked for it. */
  readonly #inflight = new Map<number, Set<string>>()
  /** Chunk → peers whose copy failed verification (cleared once verified). */
  readonly #failedAt = new Map<number, Set<string>>()
  duplicateBytes = 0
  duplicateChunks = 0
  /** Providers that may still join (connecting): each holds a share of the window for itself. */
  expectedPeers = 0

  constructor(o: SchedulerOptions) {
    for (const k of [
      'windowChunks',
      'windowBytes',
      'minPipelineBytes',
      'endgamePeers',
      'maxPeerFailures',
    ] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] < 1)
        throw new InvalidArgumentError(`${k} must be an integer >= 1`)
    }
    this.o = o
    this.#done = new Bitset(o.leafCount)
  }

  get remaining(): number {
    return this.o.leafCount - this.#doneCount
  }

  get complete(): boolean {
    return this.#doneCount === this.o.leafCount
  }

  /** First chunk not yet verified; chunks below it are all done. */
  get low(): number {
    return this.#low
  }

  /** The window [low, end) picks come from. */
  window(): { start: number; end: number } {
    return { start: this.#low, end: Math.min(this.o.leafCount, this.#low + this.o.windowChunks) }
  }

  isDone(i: number): boolean {
    return this.#done.get(i)
  }

  /** Chunks already verified (a resumed transfer) before any peer is asked. */
  markDone(i: number): void {
    if (this.#done.get(i)) return
    this.#done.set(i)
    this.#doneCount++
    this.#advance()
  }

  addPeer(id: string, have: Have): void {
    const old = this.#peers.get(id)
    if (old !== undefined && !old.dropped) {
      old.have = have
      return
    }
    if (old?.dropped) return
    this.#peers.set(id, new PeerPipeline(id, have))
  }

  setHave(id: string, have: Have): void {
    const p = this.#peers.get(id)
    if (p !== undefined) p.have = have
  }

  /** Live peers (not dropped, not removed). */
  peers(): string[] {
    return [...this.#peers.values()].filter((p) => !p.dropped).map((p) => p.id)
  }

  isDropped(id: string): boolean {
    return this.#peers.get(id)?.dropped === true
  }

  report(id: string): PeerReport | undefined {
    return this.#peers.get(id)?.report()
  }

  /** The peer left (disconnected): its in-flight chunks go back to the pool; it may be added again. */
  removePeer(id: string): void {
    const p = this.#peers.get(id)
    if (p === undefined) return
    this.#releaseAll(p)
    if (!p.dropped) this.#peers.delete(id)
  }

  /** Bytes this peer may still put in flight now. */
  capacity(id: string): number {
    const p = this.#peers.get(id)
    if (p === undefined || p.dropped) return 0
    return Math.max(0, this.target(id) - p.inflightBytes)
  }

  /** Bytes this peer may have in flight: its share of `windowBytes` by rate, at least `minPipelineBytes`. */
  target(id: string): number {
    const live = [...this.#peers.values()].filter((p) => !p.dropped)
    const p = this.#peers.get(id)
    if (p === undefined || p.dropped) return 0
    return pipelineTarget(p, live, this.o, this.expectedPeers)
  }

  /**
   * Chunks for `id` to ask for next, marked in flight at it: up to `maxChunks` and `maxBytes`
   * (at least one chunk if any fits the peer at all). `sizeOf` gives a chunk's length, or
   * undefined while its leaf page is not at hand (the chunk is skipped).
   */
  pick(
    id: string,
    maxChunks: number,
    maxBytes: number,
    sizeOf: (i: number) => number | undefined,
  ): ChunkPick {
    const p = this.#peers.get(id)
    const none: ChunkPick = { indices: [], bytes: 0, duplicate: false }
    if (p === undefined || p.dropped || maxChunks < 1) return none
    const { start, end } = this.window()
    // Every live peer holds everything (one provider, or complete seeders only): rarest first
    // is file order, so the first chunks that fit are the pick, found without a full scan.
    const uniform = [...this.#peers.values()].every((q) => q.dropped || q.have === 'all')
    const candidates: number[] = []
    const fresh: Array<[number, number]> = []
    for (let i = start; i < end; i++) {
      if (this.#done.get(i) || this.#inflight.has(i) || !holds(p.have, i)) continue
      if (this.#avoid(p, i)) continue
      if (uniform) {
        candidates.push(i)
        // A chunk whose size is unknown is skipped below: look a little further.
        if (candidates.length >= 2 * maxChunks) break
      } else fresh.push([this.#availability(i), i])
    }
    if (!uniform) {
      const seed = this.o.tieSeed ?? 0
      if (seed === 0) fresh.sort((x, y) => x[0] - y[0] || x[1] - y[1])
      else fresh.sort((x, y) => x[0] - y[0] || mix(x[1], seed) - mix(y[1], seed) || x[1] - y[1])
      for (const [, i] of fresh) candidates.push(i)
    }
    if (candidates.length > 0) {
      // Booked with the size the byte limit was checked against: `sizeOf` is asked once per chunk.
      const chosen: Array<[index: number, size: number]> = []
      let bytes = 0
      for (const i of candidates) {
        const n = sizeOf(i)
        if (n === undefined) continue
        if (chosen.length > 0 && bytes + n > maxBytes) break
        chosen.push([i, n])
        bytes += n
        if (chosen.length >= maxChunks) break
      }
      if (chosen.length > 0 || !uniform) {
        for (const [i, n] of chosen) this.#start(p, i, n)
        return { indices: chosen.map(([i]) => i), bytes, duplicate: false }
      }
    }
    // Endgame: every chunk still missing is in flight somewhere; or, for a partial peer, every
    // chunk it holds that is still missing is (often at a slow seeder whose queue it can beat).
    if (this.o.endgamePeers < 2 || !(this.endgame || p.have !== 'all')) return none
    // The chunk in flight at the fewest peers, oldest (lowest) first.
    let best: number | undefined
    let bestCount = Number.POSITIVE_INFINITY
    for (const [i, at] of this.#inflight) {
      if (at.has(id) || at.size >= this.o.endgamePeers || at.size >= bestCount) continue
      if (!holds(p.have, i) || this.#failedAt.get(i)?.has(id)) continue
      if (best !== undefined && at.size === bestCount && i > best) continue
      best = i
      bestCount = at.size
    }
    const n = best === undefined ? undefined : sizeOf(best)
    if (best === undefined || n === undefined) return none
    this.#start(p, best, n)
    return { indices: [best], bytes: n, duplicate: true }
  }

  /** Every chunk still missing is in flight somewhere. */
  get endgame(): boolean {
    return this.remaining > 0 && this.#inflight.size === this.remaining
  }

  /**
   * A chunk's bytes arrived from `id` (before verification): feeds the peer's rate. Returns
   * false when the chunk was already verified from another peer (a duplicate, to be dropped).
   */
  arrived(id: string, i: number, wireBytes: number, now: number): boolean {
    const p = this.#peers.get(id)
    p?.sampleArrival(wireBytes, now)
    if (!this.#done.get(i)) return true
    this.duplicateBytes += wireBytes
    this.duplicateChunks++
    if (p !== undefined) this.#release(p, i)
    return false
  }

  /**
   * Chunk `i` from `id` passed verification and was written. Returns the other peers that still
   * have it in flight (their copies are now duplicates: cancel them if nothing else is pending).
   */
  verified(id: string, i: number): string[] {
    if (this.#done.get(i)) return []
    const p = this.#peers.get(id)
    if (p !== undefined) p.verifiedBytes += p.inflight.get(i) ?? 0
    this.#done.set(i)
    this.#doneCount++
    this.#failedAt.delete(i)
    const others: string[] = []
    for (const peer of this.#inflight.get(i) ?? []) {
      const q = this.#peers.get(peer)
      if (q === undefined) continue
      if (peer !== id) others.push(peer)
      this.#release(q, i)
    }
    this.#inflight.delete(i)
    this.#advance()
    return others
  }

  /**
   * `id`'s copy of chunk `i` failed verification. Returns true when that dropped the peer
   * (its other in-flight chunks were released: abort its requests).
   */
  corrupt(id: string, i: number): boolean {
    const p = this.#peers.get(id)
    if (p === undefined) return false
    this.#release(p, i)
    if (this.#done.get(i)) return false
    let at = this.#failedAt.get(i)
    if (at === undefined) this.#failedAt.set(i, (at = new Set()))
    at.add(id)
    p.failures++
    if (p.failures < this.o.maxPeerFailures || p.dropped) return false
    p.dropped = true
    this.#releaseAll(p)
    return true
  }

  /** Requests to `id` for these chunks ended without them (cancelled, unavailable, stream gone). */
  released(id: string, indices: Iterable<number>): void {
    const p = this.#peers.get(id)
    if (p === undefined) return
    for (const i of indices) this.#release(p, i)
  }

  /** A request to `id` timed out: its chunks go to others and its measured rate halves. */
  stalled(id: string, indices: Iterable<number>): void {
    const p = this.#peers.get(id)
    if (p === undefined) return
    p.stalled()
    this.released(id, indices)
  }

  /**
   * The lowest chunk in the window that is missing, in flight nowhere, and held by no live
   * peer: what a transfer waits for (partial peers may still get it) or fails on.
   */
  unavailable(): number | undefined {
    const { start, end } = this.window()
    const live = [...this.#peers.values()].filter((p) => !p.dropped)
    for (let i = start; i < end; i++) {
      if (this.#done.get(i) || this.#inflight.has(i)) continue
      if (!live.some((p) => holds(p.have, i))) return i
    }
    return undefined
  }

  /** Live peers currently fetching `i`. */
  inflightAt(i: number): string[] {
    return [...(this.#inflight.get(i) ?? [])]
  }

  #availability(i: number): number {
    let n = 0
    for (const q of this.#peers.values()) if (!q.dropped && holds(q.have, i)) n++
    return n
  }

  /** Skip chunk `i` for `p` if `p` failed it before and another live peer that has not could serve it. */
  #avoid(p: PeerPipeline, i: number): boolean {
    const failed = this.#failedAt.get(i)
    if (failed === undefined || !failed.has(p.id)) return false
    for (const q of this.#peers.values()) {
      if (!q.dropped && q !== p && !failed.has(q.id) && holds(q.have, i)) return true
    }
    return false
  }

  #start(p: PeerPipeline, i: number, bytes: number): void {
    p.add(i, bytes)
    let at = this.#inflight.get(i)
    if (at === undefined) this.#inflight.set(i, (at = new Set()))
    at.add(p.id)
  }

  /** Starts a rate sample if none runs: call when a request is actually sent. */
  sent(id: string, now: number): void {
    this.#peers.get(id)?.startSample(now)
  }

  #release(p: PeerPipeline, i: number): void {
    if (!p.remove(i)) return
    const at = this.#inflight.get(i)
    at?.delete(p.id)
    if (at?.size === 0) this.#inflight.delete(i)
  }

  #releaseAll(p: PeerPipeline): void {
    for (const i of [...p.inflight.keys()]) this.#release(p, i)
  }

  #advance(): void {
    while (this.#low < this.o.leafCount && this.#done.get(this.#low)) this.#low++
  }
}

/** A 32-bit mix of chunk index `i` and `seed` (murmur3's finalizer): a cheap per-fetch permutation key. */
function mix(i: number, seed: number): number {
  let h = (i ^ seed) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
