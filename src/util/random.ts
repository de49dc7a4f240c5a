import { randomFillSync } from 'node:crypto'
import { open } from 'node:fs/promises'

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

/**
 * Writes `bytes` of random data to `path` (created or truncated), one block at a time; `onBlock`
 * sees each block before it is written (valid only during the call).
 */
export async function writeRandomFile(
  path: string,
  bytes: number,
  blockBytes = 4 * 1024 * 1024,
  onBlock?: (block: Uint8Array) => void,
): Promise<void> {
  const fh = await open(path, 'w')
  const block = Buffer.allocUnsafe(Math.max(1, Math.min(blockBytes, bytes)))
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(block.length, bytes - done)
      randomFillSync(block, 0, n)
      onBlock?.(block.subarray(0, n))
      await fh.write(block, 0, n)
      done += n
    }
  } finally {
    await fh.close()
  }
}
