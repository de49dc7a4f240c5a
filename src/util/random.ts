/**
 * mulberry32: a small seeded PRNG (uniform in [0, 1)). Load tests, fault runs
 * and tests draw from it so a run can be replayed from its seed. Not for
 * anything that needs unpredictability.
 */
export function mulberry32(seed: number): () => number {
  let a = seed | 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
