import { afterEach, describe, expect, it, vi } from 'vitest'
import { ProgressMeter } from '../../src/transfer/progress.ts'

const MiB = 1024 * 1024

describe('ProgressMeter: the rate', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

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
