/**
 * What the `auto` codec does for one receiving peer, chosen by measurement: send plain, or zstd
 * at one of a few levels (a chunk that does not shrink by 10 % still goes plain whatever the
 * step, see src/workers/codecs.ts).
 *
 * Why measure: compressing pays only while the link, not the CPU, is what limits delivery. On
 * loopback, zstd-1 on two shared cores moved text at 0.35–0.46x the bare encrypted stream, plain
 * at 0.65–1.09x; on a 100 Mbit/s link the same text compressed moves at twice the link rate. Neither the link's rate nor the cores' spare time is known in advance, and both
 * change (other transfers, other programs), so the sender measures what it cares about: plain
 * bytes per second taken by the peer's streams under each step.
 *
 * How: the steps form a ladder from plain to the strongest level, cheapest first. The chosen
 * step runs for `hold` measurement windows, then a neighbour on the ladder is tried for one
 * window; the neighbour becomes the choice if it delivered more by `margin`, and stays it if its
 * next window still beats the step it replaced (one lucky window does not move it). The first
 * window of all is the connection warming up and is not counted. A probe that loses multiplies
 * `hold` by four (up to `maxHold`) and the next probe goes the other way; one that wins resets it,
 * so the choice climbs as far as it keeps paying; a move to the end of the ladder, once confirmed,
 * counts as the lost probe of the step it left. A window spans at least `windowBytes` and
 * `windowMs`; a gap longer than `pauseMs` between two sends (the peer asked for nothing) starts
 * it again, so idle time is not taken for a slow step.
 */
import type { CodecPolicy } from '../workers/codecs.ts'

export interface CodecStep {
  readonly policy: CodecPolicy
  /** zstd's level (for `auto`). */
  readonly level: number
}

/**
 * Cheapest first: plain, then zstd levels (for chunks the probe calls compressible). Measured
 * here on 1 MiB chunks of word-salad text, one core, warm: zstd-1 keeps 0.42 of the bytes at
 * ~150–180 MB/s, zstd-3 0.39 at ~140, zstd-9 0.38 at ~40 (more levels gain less than the margin).
 * lz4 is not a step: on loopback it delivered less than zstd-1 (91–127 against 119–140 MB/s),
 * and a ladder that dips between plain and zstd-1 kept the choice at zstd-1 where plain
 * delivered twice as much.
 */
export const CODEC_LADDER: readonly CodecStep[] = [
  { policy: 'none', level: 0 },
  { policy: 'auto', level: 1 },
  { policy: 'auto', level: 3 },
  { policy: 'auto', level: 9 },
]

/**
 * The step an `auto` sender starts at: zstd-1. Links between machines are usually slower than the
 * cores, and there starting plain costs the climb: 256 MiB of text over 100 Mbit/s moved at 1.98x
 * the link rate starting plain, 2.07x starting at zstd-1 (docs/BENCHMARKS.md); on loopback the
 * first probe finds plain better.
 */
export const FIRST_STEP = 1

export interface CodecChoiceOptions {
  readonly windowBytes: number
  readonly windowMs: number
  readonly pauseMs: number
  readonly hold: number
  readonly maxHold: number
  /** A probe must deliver this fraction more than the choice to replace it. */
  readonly margin: number
  readonly now?: () => number
}

export const defaultCodecChoice: CodecChoiceOptions = {
  windowBytes: 4 * 1024 * 1024,
  windowMs: 300,
  pauseMs: 1_000,
  hold: 1,
  maxHold: 64,
  margin: 0.1,
}

interface Window {
  readonly step: number
  readonly start: number
  bytes: number
  last: number
}

export class CodecChooser {
  readonly #o: CodecChoiceOptions
  readonly #now: () => number
  #step = FIRST_STEP
  #trying: number | undefined
  /** Plain bytes per second last measured for the chosen step. */
  #rate = 0
  #window: Window | undefined
  #held = 0
  #hold: number
  /** The next probe's direction on the ladder. */
  #dir: 1 | -1 = -1
  #switches = 0
  /** The first window was measured (and dropped). */
  #warm = false
  /** The choice a probe just replaced, until the new one's first own window confirms it. */
  #undo: { step: number; rate: number } | undefined

  constructor(o: Partial<CodecChoiceOptions> = {}) {
    this.#o = { ...defaultCodecChoice, ...o }
    this.#now = o.now ?? (() => performance.now())
    this.#hold = this.#o.hold
  }

  /** The ladder index the next chunk is encoded with. */
  current(): number {
    return this.#trying ?? this.#step
  }

  /** The chosen step (not a probe). */
  get chosen(): number {
    return this.#step
  }

  /** How many times the choice changed. */
  get switches(): number {
    return this.#switches
  }

  /**
   * A chunk encoded under ladder step `step`, `rawLength` plain bytes, was taken by the peer's
   * stream. Chunks read ahead under an earlier step do not count.
   */
  sent(step: number, rawLength: number): void {
    if (step !== this.current()) return
    const now = this.#now()
    const w = this.#window
    if (w === undefined || w.step !== step || now - w.last > this.#o.pauseMs) {
      // The first send starts the clock; the bytes that follow are what the window measures.
      this.#window = { step, start: now, bytes: 0, last: now }
      return
    }
    w.bytes += rawLength
    w.last = now
    if (w.bytes < this.#o.windowBytes || now - w.start < this.#o.windowMs) return
    this.#window = undefined
    this.#measured(step, (w.bytes * 1000) / (now - w.start))
  }

  #measured(step: number, rate: number): void {
    if (this.#trying === undefined) {
      // The first window covers the connection's warm-up (TCP and yamux windows, JIT): not a rate.
      if (this.#warm === false) {
        this.#warm = true
        return
      }
      const undo = this.#undo
      this.#undo = undefined
      if (undo !== undefined && rate < undo.rate) {
        // The probe's window was luck: the step it replaced does better.
        this.#step = undo.step
        this.#rate = undo.rate
        this.#switches--
        this.#lost()
        return
      }
      if (undo !== undefined && !this.#onLadder(this.#step + this.#dir)) {
        // Confirmed at the end of the ladder: the only neighbour left is the step it replaced,
        // beaten by the probe and again now. Tried again only after four times as long, as a
        // lost probe would be (plain on loopback: one zstd window fewer a transfer).
        this.#lost()
      }
      this.#rate = rate
      if (++this.#held < this.#hold) return
      this.#held = 0
      this.#trying = this.#neighbour()
      return
    }
    this.#trying = undefined
    if (rate > this.#rate * (1 + this.#o.margin)) {
      // It paid: the choice moves (to be confirmed by its next window), and the next probe goes on
      // the same way soon.
      this.#undo = { step: this.#step, rate: this.#rate }
      this.#dir = step > this.#step ? 1 : -1
      this.#step = step
      this.#rate = rate
      this.#hold = this.#o.hold
      this.#switches++
    } else this.#lost()
  }

  /** A probe lost: the next goes the other way, after four times as long. */
  #lost(): void {
    this.#dir = this.#dir === 1 ? -1 : 1
    this.#hold = Math.min(this.#hold * 4, this.#o.maxHold)
  }

  #onLadder(step: number): boolean {
    return step >= 0 && step < CODEC_LADDER.length
  }

  #neighbour(): number {
    const next = this.#step + this.#dir
    if (this.#onLadder(next)) return next
    this.#dir = this.#dir === 1 ? -1 : 1
    return this.#step + this.#dir
  }
}

/** A ladder step's name in stats and metrics: `none`, or `zstd-<level>`. */
export function stepName(step: number): string {
  const s = CODEC_LADDER[step]!
  return s.policy === 'none' ? 'none' : `zstd-${s.level}`
}

/** Peers whose choosers are kept; the least recently served goes first (it starts over at FIRST_STEP). */
export const MAX_CODEC_PEERS = 1024

/** One chooser per receiving peer (its streams share its link), for an engine whose codec is `auto`. */
export class CodecChoices {
  readonly #o: Partial<CodecChoiceOptions>
  /** Least recently used first. */
  readonly #peers = new Map<string, CodecChooser>()

  constructor(o: Partial<CodecChoiceOptions> = {}) {
    this.#o = o
  }

  /** How many of the peers kept are at each chosen step (every step named, 0 included). */
  chosenSteps(): Record<string, number> {
    const by: Record<string, number> = Object.fromEntries(CODEC_LADDER.map((_, i) => [stepName(i), 0]))
    for (const c of this.#peers.values()) by[stepName(c.chosen)]!++
    return by
  }

  of(peer: string): CodecChooser {
    let c = this.#peers.get(peer)
    if (c !== undefined) this.#peers.delete(peer)
    else {
      c = new CodecChooser(this.#o)
      if (this.#peers.size >= MAX_CODEC_PEERS) this.#peers.delete(this.#peers.keys().next().value!)
    }
    this.#peers.set(peer, c)
    return c
  }
}
