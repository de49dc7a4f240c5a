import type { Have } from './have.ts'

/**
 * One peer as the swarm scheduler (./scheduler.ts) sees it: what it holds, which chunks it has
 * in flight, and how fast it delivers. Pure bookkeeping; callers pass `now`.
 *
 * Proportional pipelines: a peer may have `pipelineTarget` bytes in flight, its share of
 * `windowBytes` by measured rate (a peer not yet measured counts as the mean), never below half
 * an equal share nor `minPipelineBytes`, so a slow peer gets less and a fast one more, and no
 * peer is starved of the chance to show it got faster.
 */

export interface PeerReport {
  readonly id: string
  readonly complete: boolean
  readonly rate: number
  readonly inflightBytes: number
  readonly verifiedBytes: number
  readonly failures: number
  readonly stalls: number
  readonly dropped: boolean
}

const RATE_SAMPLE_MS = 250

export class PeerPipeline {
  readonly id: string
  have: Have
  /** Bytes per second, smoothed; 0 until the first sample completes. */
  rate = 0
  #sampleStart = -1
  #sampleBytes = 0
  /** Chunk index → bytes asked for. */
  readonly inflight = new Map<number, number>()
  inflightBytes = 0
  verifiedBytes = 0
  failures = 0
  stalls = 0
  dropped = false

  constructor(id: string, have: Have) {
    this.id = id
    this.have = have
  }

  /** Starts a rate sample if none runs: call when a request is actually sent. */
  startSample(now: number): void {
    if (this.#sampleStart < 0) {
      this.#sampleStart = now
      this.#sampleBytes = 0
    }
  }

  /** `wireBytes` of a chunk arrived: closes the rate sample once it spans RATE_SAMPLE_MS. */
  sampleArrival(wireBytes: number, now: number): void {
    this.#sampleBytes += wireBytes
    const dt = now - this.#sampleStart
    if (this.#sampleStart >= 0 && dt >= RATE_SAMPLE_MS) {
      const inst = (this.#sampleBytes * 1000) / dt
      this.rate = this.rate === 0 ? inst : 0.6 * this.rate + 0.4 * inst
      this.#sampleStart = now
      this.#sampleBytes = 0
    }
  }

  /** A request timed out: its measured rate halves, so its pipeline shrinks. */
  stalled(): void {
    this.stalls++
    this.rate /= 2
  }

  add(i: number, bytes: number): void {
    this.inflight.set(i, bytes)
    this.inflightBytes += bytes
  }

  /** Chunk `i` is no longer in flight here; false when it was not. */
  remove(i: number): boolean {
    const bytes = this.inflight.get(i)
    if (bytes === undefined) return false
    this.inflight.delete(i)
    this.inflightBytes -= bytes
    // An idle spell is not the peer being slow: the next request starts a new sample.
    if (this.inflightBytes === 0) {
      this.#sampleStart = -1
      this.#sampleBytes = 0
    }
    return true
  }

  report(): PeerReport {
    return {
      id: this.id,
      complete: this.have === 'all',
      rate: this.rate,
      inflightBytes: this.inflightBytes,
      verifiedBytes: this.verifiedBytes,
      failures: this.failures,
      stalls: this.stalls,
      dropped: this.dropped,
    }
  }
}

/**
 * Bytes `p` may have in flight: its share of `windowBytes` by rate among the `live` peers (`p`
 * among them), at least `minPipelineBytes`. `expectedPeers` counts providers still connecting.
 */
export function pipelineTarget(
  p: PeerPipeline,
  live: readonly PeerPipeline[],
  o: { readonly windowBytes: number; readonly minPipelineBytes: number },
  expectedPeers: number,
): number {
  const measured = live.filter((q) => q.rate > 0)
  const mean = measured.length === 0 ? 1 : measured.reduce((s, q) => s + q.rate, 0) / measured.length
  const rateOf = (q: PeerPipeline): number => (q.rate > 0 ? q.rate : mean)
  // Peers still connecting keep a mean share, so the first to answer does not take the whole window.
  const waiting = Math.max(0, expectedPeers - live.length)
  const total = live.reduce((s, q) => s + rateOf(q), 0) + waiting * mean
  const share = Math.floor((o.windowBytes * rateOf(p)) / total)
  // A peer measured slow still keeps half an equal share: a pipeline cut to its measured rate
  // would idle it between requests, measure it slower still, and starve it for good.
  const floor = Math.floor(o.windowBytes / (2 * Math.max(live.length, expectedPeers)))
  return Math.max(o.minPipelineBytes, floor, share)
}
