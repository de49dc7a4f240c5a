import { describe, expect, it } from 'vitest'
import {
  CODEC_LADDER,
  CodecChoices,
  CodecChooser,
  FIRST_STEP,
  MAX_CODEC_PEERS,
} from '../../src/serve/codec-choice.ts'

const MiB = 1024 * 1024
const MB = 1e6

/**
 * Sends `chunks` 1 MiB chunks through a chooser on a hand-moved clock, each taking as long as
 * `rate(step)` (plain bytes per second delivered under that step) says; returns the steps used.
 */
function run(
  chooser: CodecChooser,
  clock: { t: number },
  chunks: number,
  rate: (step: number) => number,
): number[] {
  const used: number[] = []
  for (let i = 0; i < chunks; i++) {
    const step = chooser.current()
    used.push(step)
    clock.t += (MiB / rate(step)) * 1000
    chooser.sent(step, MiB)
  }
  return used
}

function chooser(): { c: CodecChooser; clock: { t: number } } {
  const clock = { t: 0 }
  return { c: new CodecChooser({ windowBytes: 8 * MiB, windowMs: 50, now: () => clock.t }), clock }
}

/** A link of `link` bytes/s; each step's CPU rate and kept fraction as measured for word-salad text. */
function linked(link: number): (step: number) => number {
  const cpu = [Infinity, 150 * MB, 140 * MB, 40 * MB]
  const kept = [1, 0.42, 0.39, 0.38]
  return (step) => Math.min(link / kept[step]!, cpu[step]!)
}

describe('CodecChooser', () => {
  it('starts at zstd-1 and, where the link is faster than compressing (loopback), settles on plain, probing ever more rarely', () => {
    const { c, clock } = chooser()
    expect(CODEC_LADDER[FIRST_STEP]).toEqual({ policy: 'auto', level: 1 })
    const used = run(c, clock, 1024, linked(400 * MB))
    expect(c.chosen).toBe(0)
    // The first probe finds plain better; later probes (of zstd-1) lose, ever more rarely.
    const compressed = used.filter((s) => s !== 0).length
    expect(compressed).toBeLessThan(used.length * 0.1)
    expect(used.slice(-256).filter((s) => s !== 0).length).toBeLessThanOrEqual(9)
  })

  it('plain confirmed at the end of the ladder: zstd-1, beaten twice, is tried again only after four windows', () => {
    const { c, clock } = chooser()
    const rate = linked(400 * MB)
    // The time spent in each run of one step, in order.
    const runs: Array<{ step: number; ms: number }> = []
    for (let i = 0; i < 2048 && runs.length < 4; i++) {
      const step = c.current()
      const ms = (MiB / rate(step)) * 1000
      if (runs.at(-1)?.step !== step) runs.push({ step, ms: 0 })
      runs.at(-1)!.ms += ms
      clock.t += ms
      c.sent(step, MiB)
    }
    expect(runs.map((r) => r.step)).toEqual([1, 0, 1, 0])
    // The probe of plain, its confirming window, then four held: five windows of 50 ms at least.
    expect(runs[1]!.ms).toBeGreaterThanOrEqual(5 * 50)
  })

  it('on a 100 Mbit/s link, stays at zstd-1 (zstd-3 would deliver 8 % more, under the margin; plain less)', () => {
    const { c, clock } = chooser()
    run(c, clock, 512, linked(12.5 * MB))
    expect(CODEC_LADDER[c.chosen]).toEqual({ policy: 'auto', level: 1 })
  })

  it('on a 10 Mbit/s link, where zstd-3 delivers more than the margin over zstd-1, climbs to it', () => {
    const { c, clock } = chooser()
    // Text that zstd-3 shrinks to 0.3 of what zstd-1 keeps 0.4 of.
    const kept = [1, 0.4, 0.3, 0.29]
    const cpu = [Infinity, 150 * MB, 140 * MB, 40 * MB]
    run(c, clock, 512, (step) => Math.min((1.25 * MB) / kept[step]!, cpu[step]!))
    expect(CODEC_LADDER[c.chosen]).toEqual({ policy: 'auto', level: 3 })
  })

  it('one lucky probe window does not move the choice: the next window of the new step must confirm it', () => {
    const { c, clock } = chooser()
    // Plain runs at 100; zstd-1 at 60, but its probe window alone at 200 (after it was left for plain).
    let lucky = true
    const used = run(c, clock, 256, (step) => {
      if (step !== 1) return 100 * MB
      if (c.current() === 1 && lucky && c.chosen === 0) {
        return 200 * MB
      }
      lucky = false
      return 60 * MB
    })
    // One switch: from zstd-1, where it starts, to plain; the lucky probe's was taken back.
    expect(c.chosen).toBe(0)
    expect(c.switches).toBe(1)
    expect(lucky).toBe(false)
    expect(used.filter((s) => s === 1).length).toBeLessThan(64)
  })

  it('follows the link when it changes: plain while fast, compressing once it slows', () => {
    const { c, clock } = chooser()
    run(c, clock, 512, linked(400 * MB))
    expect(c.chosen).toBe(0)
    run(c, clock, 2048, linked(12.5 * MB))
    expect(c.chosen).toBeGreaterThan(0)
  })

  it('counts neither chunks read ahead under another step nor a pause as a rate', () => {
    const { c, clock } = chooser()
    // Chunks of a step not in use change nothing.
    for (let i = 0; i < 64; i++) {
      clock.t += 1
      c.sent(3, MiB)
    }
    expect(c.current()).toBe(FIRST_STEP)
    // A window of the first step, interrupted by a long pause each time before it fills: no
    // measurement, so no probe.
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 5; i++) {
        clock.t += 10
        c.sent(FIRST_STEP, MiB)
      }
      clock.t += 5_000
    }
    expect(c.current()).toBe(FIRST_STEP)
  })
})

describe('CodecChoices', () => {
  it('one chooser per peer, the least recently served dropped past MAX_CODEC_PEERS', () => {
    const choices = new CodecChoices()
    const first = choices.of('p0')
    expect(choices.of('p0')).toBe(first)
    for (let i = 1; i <= MAX_CODEC_PEERS; i++) choices.of(`p${i}`)
    expect(choices.of('p0')).not.toBe(first)
  })

  it('counts the peers at each chosen step, every step named (what stats and metrics show)', () => {
    const clock = { t: 0 }
    const choices = new CodecChoices({ windowBytes: 8 * MiB, windowMs: 50, now: () => clock.t })
    expect(choices.chosenSteps()).toEqual({ none: 0, 'zstd-1': 0, 'zstd-3': 0, 'zstd-9': 0 })
    run(choices.of('fast'), clock, 1024, linked(400 * MB))
    choices.of('new')
    expect(choices.chosenSteps()).toEqual({ none: 1, 'zstd-1': 1, 'zstd-3': 0, 'zstd-9': 0 })
  })
})
