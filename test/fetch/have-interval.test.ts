import { describe, expect, it } from 'vitest'
import { haveReadInterval } from '../../src/fetch/swarm-options.ts'

describe('haveReadInterval', () => {
  const o = { haveIntervalMs: 1_000, maxHaveReadsPerSec: 8 }
  it('is haveIntervalMs while the partial seeders together stay under maxHaveReadsPerSec', () => {
    for (const peers of [0, 1, 8]) expect(haveReadInterval(o, peers)).toBe(1_000)
  })
  it('stretches with more partial seeders, so a fetch reads at most maxHaveReadsPerSec bitmaps a second', () => {
    expect(haveReadInterval(o, 32)).toBe(4_000)
    expect(haveReadInterval(o, 9)).toBe(1_125)
    for (const peers of [9, 32, 100, 1_000]) {
      expect(peers / (haveReadInterval(o, peers) / 1000)).toBeLessThanOrEqual(o.maxHaveReadsPerSec)
    }
    expect(haveReadInterval({ haveIntervalMs: 5_000, maxHaveReadsPerSec: 8 }, 32)).toBe(5_000)
  })
})
