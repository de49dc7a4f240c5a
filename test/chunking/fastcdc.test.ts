import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CdcCutter, type CdcCutterOptions, cdcCuts, GEAR, GEAR_SEED } from '../../src/chunking/fastcdc.ts'
import { type CdcSizes, DEFAULT_CDC } from '../../src/chunking/params.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import { KiB, MiB } from '../../src/types.ts'
import { prng, pseudoRandomBytes, sha256Hex } from './helpers.ts'

const SMALL: CdcSizes = { minSize: 64 * KiB, avgSize: 256 * KiB, maxSize: 1 * MiB }
const DEFAULT = DEFAULT_CDC

/**
 * The algorithm as the module header states it, one byte at a time in double arithmetic:
 * an independent reading of the spec to check the unrolled int32 loop against.
 */
function referenceCuts(data: Uint8Array, p: CdcSizes, nc = 2): number[] {
  const bits = Math.log2(p.avgSize)
  const top = (n: number) => 2 ** 32 - 2 ** (32 - n)
  const maskS = top(bits + nc)
  const maskL = top(bits - nc)
  const lengths: number[] = []
  let s = 0
  while (s < data.length) {
    const limit = Math.min(data.length - s, p.maxSize)
    let len = limit
    let fp = 0
    for (let k = p.minSize; k < limit; k++) {
      fp = (fp * 2 + GEAR[data[s + k]!]!) % 2 ** 32
      const mask = k < p.avgSize ? maskS : maskL
      if ((fp & mask) === 0) {
        len = k + 1
        break
      }
    }
    lengths.push(len)
    s += len
  }
  return lengths
}

/** Feeds `data` to cdcCuts in pieces of random size, carrying the uncut tail like a stream would. */
function streamedCuts(data: Uint8Array, p: CdcCutterOptions, seed: number, maxPiece: number): number[] {
  const rand = prng(seed)
  const lengths: number[] = []
  let tail = new Uint8Array(0)
  let pos = 0
  while (pos < data.length) {
    // Mostly large pieces with some tiny ones, so tails straddle every kind of boundary.
    const size = rand() < 0.2 ? 1 + Math.floor(rand() * 100) : 1 + Math.floor(rand() * maxPiece)
    const piece = data.subarray(pos, Math.min(data.length, pos + size))
    pos += piece.length
    const pending = new Uint8Array(tail.length + piece.length)
    pending.set(tail)
    pending.set(piece, tail.length)
    const isFinal = pos === data.length
    const r = cdcCuts(pending, p, isFinal)
    lengths.push(...r.lengths)
    tail = pending.slice(r.consumed)
    if (isFinal) expect(tail.length).toBe(0)
  }
  return lengths
}

function chunkHashes(data: Uint8Array, lengths: number[]): string[] {
  const out: string[] = []
  let off = 0
  for (const len of lengths) {
    out.push(sha256Hex(data.subarray(off, off + len)))
    off += len
  }
  return out
}

function checkBounds(lengths: number[], total: number, p: CdcSizes): void {
  expect(lengths.reduce((a, b) => a + b, 0)).toBe(total)
  lengths.forEach((len, i) => {
    expect(len).toBeLessThanOrEqual(p.maxSize)
    if (i < lengths.length - 1) expect(len).toBeGreaterThan(p.minSize)
    else expect(len).toBeGreaterThan(0)
  })
}

describe('GEAR', () => {
  it('is derived from SHA-256 of the seed and the byte, as documented', () => {
    expect(GEAR).toHaveLength(256)
    for (let i = 0; i < 256; i++) {
      const digest = createHash('sha256').update(GEAR_SEED).update(Uint8Array.of(i)).digest()
      expect(GEAR[i]).toBe(digest.readUInt32BE(0))
    }
  })

  it('is pinned: changing it would change every CDC descriptor', () => {
    expect(GEAR_SEED).toBe('haul/fastcdc/gear/v1')
    expect(GEAR[0]).toBe(0xbc66de2f)
    expect(GEAR[255]).toBe(0xce7d8eea)
    const be = Buffer.alloc(1024)
    GEAR.forEach((v, i) => {
      be.writeUInt32BE(v, i * 4)
    })
    expect(sha256Hex(be)).toBe('e357178e5ad30956f4d46a9c872b866362c9c409f0352acb6e3a4458da7f6776')
  })

  it('is a copy: writing to it does not change cut points', () => {
    const data = pseudoRandomBytes(4 * MiB, 'gear-copy')
    const before = cdcCuts(data, SMALL, true).lengths
    const saved = GEAR[7]!
    GEAR[7] = 0
    try {
      expect(cdcCuts(data, SMALL, true).lengths).toEqual(before)
    } finally {
      GEAR[7] = saved
    }
  })
})

describe('cdcCuts', () => {
  it('produces pinned cut points for the default parameters', () => {
    const data = pseudoRandomBytes(16 * MiB, 'haul-golden')
    const { lengths } = cdcCuts(data, DEFAULT, true)
    expect(lengths.slice(0, 8)).toEqual([
      1628613, 876854, 1132316, 1176612, 1119819, 1221078, 1188127, 1093574,
    ])
  })

  it('matches the byte-at-a-time reference at every normalization level', () => {
    const data = pseudoRandomBytes(6 * MiB + 12345, 'reference')
    for (const normalization of [0, 1, 2, 3]) {
      const { lengths, consumed } = cdcCuts(data, { ...SMALL, normalization }, true)
      expect(lengths).toEqual(referenceCuts(data, SMALL, normalization))
      expect(consumed).toBe(data.length)
    }
    const big = pseudoRandomBytes(12 * MiB, 'reference-default')
    expect(cdcCuts(big, DEFAULT, true).lengths).toEqual(referenceCuts(big, DEFAULT))
  })

  it('keeps every chunk within bounds, on random and on constant data', () => {
    const random = pseudoRandomBytes(16 * MiB, 'bounds')
    for (const p of [SMALL, DEFAULT]) checkBounds(cdcCuts(random, p, true).lengths, random.length, p)
    const zeros = new Uint8Array(10 * MiB + 7)
    const z = cdcCuts(zeros, SMALL, true).lengths
    checkBounds(z, zeros.length, SMALL)
    const odd = { minSize: 100_000, avgSize: 128 * KiB, maxSize: 300_001 }
    checkBounds(cdcCuts(random, odd, true).lengths, random.length, odd)
  })

  it('gives the same cuts however the stream is split into buffers', () => {
    const data = pseudoRandomBytes(20 * MiB, 'split')
    for (const [p, seed] of [
      [SMALL, 1],
      [DEFAULT, 2],
    ] as const) {
      const oneShot = cdcCuts(data, p, true).lengths
      expect(oneShot.length).toBeGreaterThan(10)
      expect(streamedCuts(data, p, seed, 3 * MiB)).toEqual(oneShot)
      expect(streamedCuts(data, p, seed + 10, 300 * KiB)).toEqual(oneShot)
    }
  })

  it('leaves the tail uncut when not final, and cuts it when final', () => {
    const data = pseudoRandomBytes(3 * MiB, 'tail')
    const all = cdcCuts(data, SMALL, true)
    const partial = cdcCuts(data, SMALL, false)
    expect(partial.consumed).toBeLessThan(data.length)
    expect(partial.lengths).toEqual(all.lengths.slice(0, partial.lengths.length))
    expect(partial.consumed).toBe(partial.lengths.reduce((a, b) => a + b, 0))
    expect(all.consumed).toBe(data.length)
  })

  it('is content-defined: inserting one byte near the start keeps most chunks', () => {
    const original = pseudoRandomBytes(16 * MiB, 'insert')
    const edited = new Uint8Array(original.length + 1)
    edited.set(original.subarray(0, 1000))
    edited[1000] = 0x5a
    edited.set(original.subarray(1000), 1001)
    for (const p of [SMALL, DEFAULT]) {
      const a = chunkHashes(original, cdcCuts(original, p, true).lengths)
      const b = new Set(chunkHashes(edited, cdcCuts(edited, p, true).lengths))
      const shared = a.filter((h) => b.has(h)).length
      expect(shared / a.length).toBeGreaterThanOrEqual(0.8)
    }
  })

  it('spreads chunk sizes less at a higher normalization level', () => {
    const data = pseudoRandomBytes(16 * MiB, 'normalization')
    const stddev = (xs: number[]) => {
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length
      return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length)
    }
    const nc0 = stddev(cdcCuts(data, { ...SMALL, normalization: 0 }, true).lengths.slice(0, -1))
    const nc3 = stddev(cdcCuts(data, { ...SMALL, normalization: 3 }, true).lengths.slice(0, -1))
    expect(nc3).toBeLessThan(nc0)
  })

  it('cuts a Buffer exactly like a Uint8Array', () => {
    const data = pseudoRandomBytes(4 * MiB, 'buffer')
    expect(cdcCuts(Buffer.from(data), SMALL, true)).toEqual(cdcCuts(data, SMALL, true))
  })
})

describe('CdcCutter.nextCut', () => {
  const cutter = new CdcCutter(SMALL)
  const data = pseudoRandomBytes(4 * MiB, 'next-cut')
  const first = cdcCuts(data, SMALL, true).lengths[0]!

  it('asks for more data until a cut or maxSize is reached', () => {
    expect(cutter.nextCut(data, 0, 0, false)).toBe(-1)
    expect(cutter.nextCut(data, 0, SMALL.minSize, false)).toBe(-1)
    expect(cutter.nextCut(data, 0, first - 1, false)).toBe(-1)
    expect(cutter.nextCut(data, 0, first, false)).toBe(first)
    expect(cutter.nextCut(data, 0, data.length, false)).toBe(first)
  })

  it('returns the remainder when final', () => {
    expect(cutter.nextCut(data, 0, 0, true)).toBe(0)
    expect(cutter.nextCut(data, 0, 1, true)).toBe(1)
    expect(cutter.nextCut(data, 0, first - 1, true)).toBe(first - 1)
    expect(cutter.nextCut(data, 10, 10 + SMALL.minSize, true)).toBe(SMALL.minSize)
  })

  it('hard-cuts at maxSize without waiting for more data', () => {
    const zeros = new Uint8Array(2 * MiB)
    const fromZeros = cutter.nextCut(zeros, 0, zeros.length, false)
    expect(fromZeros).toBeGreaterThan(SMALL.minSize)
    expect(fromZeros).toBeLessThanOrEqual(SMALL.maxSize)
    const noCut = new CdcCutter({ minSize: 1 * MiB, avgSize: 1 * MiB, maxSize: 1 * MiB })
    expect(noCut.nextCut(data, 0, 1 * MiB, false)).toBe(1 * MiB)
    expect(noCut.nextCut(data, 0, 1 * MiB - 1, false)).toBe(-1)
  })

  it('rejects bad ranges and bad parameters with InvalidArgumentError', () => {
    expect(() => cutter.nextCut(data, 5, 4, true)).toThrow(InvalidArgumentError)
    expect(() => cutter.nextCut(data, -1, 4, true)).toThrow(InvalidArgumentError)
    expect(() => cutter.nextCut(data, 0, data.length + 1, true)).toThrow(InvalidArgumentError)
    expect(() => cutter.nextCut(data, 0.5, 4, true)).toThrow(InvalidArgumentError)
    expect(() => new CdcCutter({ ...SMALL, normalization: 4 })).toThrow(InvalidArgumentError)
    expect(() => new CdcCutter({ ...SMALL, avgSize: 300 * KiB })).toThrow(InvalidArgumentError)
    expect(() => new CdcCutter({ ...SMALL, minSize: 4 * KiB })).toThrow(InvalidArgumentError)
  })
})
