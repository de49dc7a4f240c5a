import { afterEach, describe, expect, it, vi } from 'vitest'
import { ProgressMeter } from '../../src/transfer/progress.ts'

const MiB = 1024 * 1024

afterEach(() => {
  vi.useRealTimers()
})

describe('ProgressMeter: the rate', () => {
  it('spans the last chunks on a link where one takes longer than the window, instead of reading 0 between them', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const meter = new ProgressMeter(8 * MiB, 8)
    // One 1 MiB chunk every 8 s (a link of ~1 Mbit/s).
    for (let i = 1; i <= 3; i++) {
      vi.advanceTimersByTime(6_000)
      meter.add(MiB)
      vi.advanceTimersByTime(2_000)
      const p = meter.snapshot()
      // 2 s after a chunk: about 1 MiB per 8–10 s (the base: the chunk before, or the start).
      expect(p.rate / MiB, `after chunk ${i}`).toBeGreaterThan(0.05)
      expect(p.etaSeconds, `after chunk ${i}`).toBeDefined()
    }
  })

  it('over the last window on a fast link, and falling to 0 once nothing arrives', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const meter = new ProgressMeter(100 * MiB, 100)
    for (let i = 0; i < 50; i++) {
      vi.advanceTimersByTime(100)
      meter.add(MiB)
    }
    // 1 MiB every 100 ms: 10 MiB/s over the window.
    expect(meter.snapshot().rate / MiB).toBeCloseTo(10, 0)
    vi.advanceTimersByTime(60_000)
    expect(meter.snapshot().rate / MiB).toBeLessThan(0.5)
  })
})

describe('ProgressMeter: bytes on their way', () => {
  it('counts the bytes of a chunk not yet whole in the rate and the ETA, not in the bytes done', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const meter = new ProgressMeter(4 * MiB, 4)
    let arriving = 0
    meter.arrivingFrom(() => arriving)
    // A 1 MiB chunk taking 8 s: 128 KiB a second, and nothing whole yet.
    for (let s = 1; s <= 6; s++) {
      vi.advanceTimersByTime(1_000)
      arriving = (s * MiB) / 8
    }
    const p = meter.snapshot()
    expect(p.bytesDone).toBe(0)
    expect(p.chunksDone).toBe(0)
    expect(p.bytesArriving).toBe((6 * MiB) / 8)
    expect(p.rate / MiB).toBeCloseTo(1 / 8, 1)
    // What is left: 4 MiB less what has arrived, at 1/8 MiB a second.
    expect(p.etaSeconds).toBeCloseTo(26, -1)
  })

  it('never counts more arriving than is left, nor a rate below 0 when a cut drops a chunk half-way', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const meter = new ProgressMeter(2 * MiB, 2)
    let arriving = 0
    meter.arrivingFrom(() => arriving)
    meter.add(MiB)
    arriving = 3 * MiB
    expect(meter.snapshot().bytesArriving).toBe(MiB)
    vi.advanceTimersByTime(500)
    arriving = 0
    vi.advanceTimersByTime(500)
    expect(meter.snapshot().rate).toBeGreaterThanOrEqual(0)
    meter.arrivingFrom(undefined)
    arriving = 100
    expect(meter.snapshot().bytesArriving).toBe(0)
  })
})

describe('ProgressMeter: after a check', () => {
  it('the fetch rate starts when the check ends, not with the meter: a long check does not make the first chunks look slow', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const meter = new ProgressMeter(64 * MiB, 64, 32 * MiB, 32)
    meter.startCheck(32 * MiB, 32)
    for (let i = 0; i < 32; i++) {
      vi.advanceTimersByTime(1_000)
      meter.checked(MiB)
    }
    meter.endCheck()
    vi.advanceTimersByTime(1_000)
    meter.add(MiB)
    const p = meter.snapshot()
    expect(p.rate / MiB).toBeCloseTo(1, 1)
    expect(p.etaSeconds).toBeLessThan(60)
  })
})

describe('ProgressMeter: a count that grows in steps further apart than the window', () => {
  it('reads the rate the steps make, though reports come every second between them', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const KiB = 1024
    const meter = new ProgressMeter(8 * MiB, 8)
    let arriving = 0
    meter.arrivingFrom(() => arriving)
    // 256 KiB frames every 4 s (512 kbit/s), a report every second.
    const rates: number[] = []
    for (let s = 1; s <= 16; s++) {
      vi.advanceTimersByTime(1_000)
      if (s % 4 === 0) arriving += 256 * KiB
      const p = meter.snapshot()
      if (s % 4 === 0 && s > 4) rates.push(p.rate)
    }
    for (const r of rates) expect(r / KiB).toBeCloseTo(64, 0)
  })
})
