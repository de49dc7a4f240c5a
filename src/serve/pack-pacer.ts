/**
 * Keeps the receivers of one content together, so that a bounded chunk cache (chunk-cache.ts)
 * covers all of them: a peer about to read a chunk no one has cached waits while another active
 * peer is a cache window or more behind it, and the chunks the peer behind still needs stay
 * cached meanwhile. Stragglers catch up with the pack rather than the pack spreading.
 *
 * Why: with an LRU window alone receivers drift apart (start times, scheduling) and every one
 * that falls out of the window reads the file again: 16.3 reads per chunk for 50 receivers of
 * 256 MiB under the default budget (docs/BENCHMARKS.md). A waiting leader costs no memory (it
 * holds only its own peer's one-chunk count) and a seeder's upload is shared by all its
 * receivers, so the pack moving at the pace of its slowest active member costs little goodput.
 *
 * What it knows of a peer, per content: the lowest chunk index not yet lent to it (`low`), the
 * indices above that it already got (receivers ask mostly in order, so this set stays small and
 * is bounded), when it last got one, and how many of its requests are being answered now (past
 * its share of the budget: waiting for the pack, for a read, or reading). A peer that got nothing
 * for `idleMs` (stalled, gone, fetching elsewhere, or never reading what it asked for) stops
 * counting, whatever it has in hand, so it never holds the others for longer than that; no wait
 * lasts longer than `maxWaitMs` either way. (Counting peers with requests in hand let four
 * streams that never read slow an honest fetch of the same file past the stall test's bound.)
 *
 * Only a peer about as fast as the one that would wait is waited for: each peer's rate is taken
 * over the time it did not spend waiting for the pack, and one taking chunks at under
 * 1/SLOW_RATIO of the waiter's rate (a receiver on a slower link, or pacing itself) is left to
 * read on its own. Waiting for it would hold the waiter to its pace for the whole transfer (a
 * LAN receiver at 2 MiB/s behind one on a 10 Mbit/s link, against 38 MiB/s alone), where the
 * cost of not waiting is a second read of the chunks it needs.
 */
import { raceAbort } from '../util/abort.ts'

/** Indices above `low` remembered per peer; past it the peer is treated as having skipped to the lowest. */
const MAX_ABOVE = 1024

/** A peer behind is waited for only if it takes chunks at 1/SLOW_RATIO of the waiter's rate or more. */
export const SLOW_RATIO = 2

/**
 * A peer's rate is taken again once this many ms went by, over the time in it that the peer did
 * not wait for the pack (at least RATE_FLOOR_MS): a peer held back almost all the time by one
 * behind it shows its own rate in the moments it runs.
 */
const RATE_SAMPLE_MS = 1000
const RATE_FLOOR_MS = 50

interface Cursor {
  low: number
  readonly above: Set<number>
  /** When it last got a chunk (ms, `now()`). */
  at: number
  /** When `low` last moved: a peer behind is waited for only while it catches up. */
  movedAt: number
  /** Its requests being answered now (`begin` without `end`). */
  busy: number
  /** Chunks per second over the time it did not wait for the pack; undefined until first taken. */
  rate: number | undefined
  /** Since `sampleAt`: chunks it got, and ms it spent waiting for the pack (`pacing` > 0). */
  sampleAt: number
  sampleChunks: number
  pacedMs: number
  /** Its reads waiting for the pack now, and since when one has. */
  pacing: number
  pacingSince: number
}

interface Pack {
  readonly peers: Map<string, Cursor>
  /** Resolved (and replaced) whenever a cursor moves. */
  moved: PromiseWithResolvers<void>
}

export interface PackPacerOptions {
  /** A peer that got no chunk this long no longer holds the others back, nor keeps chunks cached for itself. */
  readonly idleMs: number
  /** The longest one read waits for the pack. */
  readonly maxWaitMs: number
  /** A peer behind whose next chunk has not moved this long is not waited for (it is not catching up). */
  readonly stuckMs: number
  readonly now?: () => number
}

export class PackPacer {
  readonly #packs = new Map<string, Pack>()
  readonly #idleMs: number
  readonly #maxWaitMs: number
  readonly #stuckMs: number
  readonly #now: () => number
  #waits = 0

  constructor(opts: PackPacerOptions) {
    this.#idleMs = opts.idleMs
    this.#maxWaitMs = opts.maxWaitMs
    this.#stuckMs = opts.stuckMs
    this.#now = opts.now ?? (() => performance.now())
  }

  /** Reads that waited for the pack since start. */
  get waits(): number {
    return this.#waits
  }

  /**
   * A request of `peer` for chunk `index` of `content` is being answered (its share let it
   * through); `end` once it is lent or failed. Keeps the peer active meanwhile, however long it
   * waits.
   */
  begin(content: string, peer: string, index: number): { end(lent: boolean): void } {
    const c = this.#cursor(content, peer, index)
    c.busy++
    let ended = false
    return {
      end: (lent) => {
        if (ended) return
        ended = true
        c.busy--
        if (lent) this.lent(content, peer, index)
        else this.#moved(content)
      },
    }
  }

  #cursor(content: string, peer: string, index: number): Cursor {
    let pack = this.#packs.get(content)
    if (pack === undefined) {
      pack = { peers: new Map(), moved: Promise.withResolvers() }
      this.#packs.set(content, pack)
    }
    let c = pack.peers.get(peer)
    if (c === undefined) {
      const now = this.#now()
      this.#prune(pack, now)
      // A peer seen first at `index` (a resume, or a second provider's part) wants what follows it.
      c = {
        low: index,
        above: new Set(),
        at: now,
        movedAt: now,
        busy: 0,
        rate: undefined,
        sampleAt: now,
        sampleChunks: 0,
        pacedMs: 0,
        pacing: 0,
        pacingSince: now,
      }
      pack.peers.set(peer, c)
    }
    return c
  }

  #active(c: Cursor, now: number): boolean {
    // Only a peer that got a chunk lately: one with requests in hand that takes nothing (a peer
    // that never reads, its stream full) must not hold the others back.
    return now - c.at <= this.#idleMs
  }

  /** Chunk `index` of `content` was lent to `peer`. */
  lent(content: string, peer: string, index: number): void {
    const c = this.#cursor(content, peer, index)
    c.at = this.#now()
    const low = c.low
    if (index === c.low) {
      c.low++
      while (c.above.delete(c.low)) c.low++
    } else if (index > c.low) {
      c.above.add(index)
      if (c.above.size > MAX_ABOVE) {
        c.low = Math.min(...c.above)
        c.above.delete(c.low)
        c.low++
        while (c.above.delete(c.low)) c.low++
      }
    }
    if (c.low !== low) c.movedAt = c.at
    this.#sample(c)
    this.#moved(content)
  }

  /** Counts a chunk `c` got, and takes its rate once RATE_SAMPLE_MS went by (see there). */
  #sample(c: Cursor): void {
    c.sampleChunks++
    const now = c.at
    if (now - c.sampleAt < RATE_SAMPLE_MS) return
    const paced = c.pacedMs + (c.pacing > 0 ? now - c.pacingSince : 0)
    const running = Math.max(RATE_FLOOR_MS, now - c.sampleAt - paced)
    const rate = (c.sampleChunks * 1000) / running
    c.rate = c.rate === undefined ? rate : (c.rate + rate) / 2
    c.sampleAt = now
    c.sampleChunks = 0
    c.pacedMs = 0
    if (c.pacing > 0) c.pacingSince = now
  }

  /** Whether `c` takes chunks too slowly for `waiter` to wait for it (see SLOW_RATIO). */
  #tooSlow(c: Cursor, waiter: Cursor | undefined): boolean {
    return waiter?.rate !== undefined && c.rate !== undefined && c.rate * SLOW_RATIO < waiter.rate
  }

  /** `c` starts (`+1`) or ends (`-1`) a wait for the pack: its rate leaves that time out. */
  #pacing(c: Cursor, step: 1 | -1): void {
    const now = this.#now()
    if (step === 1 && c.pacing++ === 0) c.pacingSince = now
    if (step === -1 && --c.pacing === 0) c.pacedMs += now - c.pacingSince
  }

  /** Wakes the reads waiting on `content`'s pack to look again. */
  #moved(content: string): void {
    const pack = this.#packs.get(content)
    if (pack === undefined) return
    const moved = pack.moved
    pack.moved = Promise.withResolvers()
    moved.resolve()
  }

  /** Whether an active peer other than `peer` (any, if undefined) has yet to get chunk `index`. */
  wanted(content: string, index: number, peer?: string): boolean {
    const pack = this.#packs.get(content)
    if (pack === undefined) return false
    const now = this.#now()
    for (const [id, c] of pack.peers) {
      if (id === peer || !this.#active(c, now)) continue
      if (c.low <= index && !c.above.has(index)) return true
    }
    return false
  }

  /**
   * Waits while an active peer other than `peer` is `window` chunks or more behind the lower of
   * `index` and `peer`'s own next chunk (a peer's later requests never wait on its earlier ones),
   * and catching up: one whose next chunk has not moved for `stuckMs` is not waited for, so a
   * peer that asks for the same chunks over and over holds the others once, for that long; nor
   * one too slow for `peer` (SLOW_RATIO).
   */
  async pace(
    content: string,
    peer: string,
    index: number,
    window: number,
    signal: AbortSignal,
  ): Promise<void> {
    const pack = this.#packs.get(content)
    if (pack === undefined) return
    const deadline = this.#now() + this.#maxWaitMs
    let counted = false
    let waiter: Cursor | undefined
    try {
      for (;;) {
        const now = this.#now()
        if (now >= deadline) return
        const own = pack.peers.get(peer)
        const pos = Math.min(index, own?.low ?? index)
        let until = deadline
        let behind = false
        for (const [id, c] of pack.peers) {
          if (id === peer || !this.#active(c, now) || now - c.movedAt > this.#stuckMs) continue
          if (c.low + window <= pos && !this.#tooSlow(c, own)) {
            behind = true
            // Looks again when it turns idle or stuck, whichever comes first, if nothing moves before.
            until = Math.min(until, c.movedAt + this.#stuckMs, c.at + this.#idleMs + 1)
          }
        }
        if (!behind) return
        if (!counted) {
          counted = true
          this.#waits++
          waiter = own
          if (waiter !== undefined) this.#pacing(waiter, 1)
        }
        // Looks again when any cursor moves, or when the peer waited for turns idle.
        let timer: NodeJS.Timeout | undefined
        const expired = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(1, until - now + 1))
        })
        try {
          await raceAbort(Promise.race([pack.moved.promise, expired]), signal)
        } finally {
          clearTimeout(timer)
        }
      }
    } finally {
      if (waiter !== undefined) this.#pacing(waiter, -1)
    }
  }

  /** Drops peers idle for a while, and so the pack's memory (bounded by peers that got chunks lately). */
  #prune(pack: Pack, now: number): void {
    for (const [key, p] of this.#packs) {
      for (const [id, c] of p.peers) if (c.busy === 0 && now - c.at > 4 * this.#idleMs) p.peers.delete(id)
      if (p.peers.size === 0 && p !== pack) this.#packs.delete(key)
    }
  }
}
