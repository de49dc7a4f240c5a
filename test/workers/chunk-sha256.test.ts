import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { isAllZero } from '../../src/util/zeros.ts'
import { chunkSha256Into, zeroChunkDigest } from '../../src/workers/chunk-sha256.ts'

const plain = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const LENGTHS = [0, 1, 63, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1024 * 1024, 1024 * 1024 + 3]

describe('chunk SHA-256 with the all-zero shortcut', () => {
  it('isAllZero: true only when every byte is 0, wherever the one non-zero byte sits', () => {
    for (const n of LENGTHS) expect(isAllZero(new Uint8Array(n)), `n=${n}`).toBe(true)
    for (const n of LENGTHS.filter((x) => x > 0)) {
      for (const at of new Set([0, n >> 1, 64 * 1024 - 1, 64 * 1024, n - 1])) {
        if (at >= n) continue
        const b = new Uint8Array(n)
        b[at] = 0x80
        expect(isAllZero(b), `n=${n} at=${at}`).toBe(false)
      }
    }
    // A view: only its own bytes count, not the rest of its buffer.
    const big = new Uint8Array(3 * 64 * 1024).fill(1)
    big.fill(0, 1000, 100_000)
    expect(isAllZero(big.subarray(1000, 100_000))).toBe(true)
    expect(isAllZero(big.subarray(999, 100_000))).toBe(false)
  })

  it('zeroChunkDigest is the plain SHA-256 of that many zero bytes, before and after its table is full', () => {
    for (let round = 0; round < 2; round++) {
      for (const n of [...LENGTHS, ...Array.from({ length: 20 }, (_, i) => 4096 * (i + 1) + i)]) {
        expect(hex(zeroChunkDigest(n)), `n=${n}`).toBe(plain(new Uint8Array(n)))
      }
    }
  })

  it('chunkSha256Into gives the plain digest for zero, random and almost-zero chunks', () => {
    const out = new Uint8Array(64)
    const almost = new Uint8Array(1024 * 1024)
    almost[almost.length - 1] = 1
    for (const data of [new Uint8Array(1024 * 1024), new Uint8Array(randomBytes(100_000)), almost]) {
      chunkSha256Into(out, 32, data)
      expect(hex(out.subarray(32))).toBe(plain(data))
    }
  })
})
