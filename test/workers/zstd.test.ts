import { constants as zc, zstdCompressSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { DecompressionError } from '../../src/errors.ts'
import { MiB } from '../../src/types.ts'
import { compress, decompress, zstdBound } from '../../src/workers/codecs.ts'
import {
  ZstdOutputError,
  zstdCompressInto,
  zstdCompressOneShot,
  zstdDecompressInto,
  zstdDecompressOneShot,
} from '../../src/workers/zstd.ts'
import { randomData, textLike } from './data.ts'

/** Decodes a fresh chunk, to show the kept context still works. */
function roundTrips(seed: number): boolean {
  const plain = textLike(200_000, seed)
  return Buffer.compare(decompress('zstd', compress('zstd', plain), plain.length), plain) === 0
}

describe('zstd with kept contexts', () => {
  it('decodes what the one-shot encoder wrote, and the one-shot decoder reads what it writes', () => {
    const plain = textLike(MiB, 11)
    const theirs = zstdCompressSync(plain, { params: { [zc.ZSTD_c_compressionLevel]: 3 } })
    const out = new Uint8Array(MiB)
    expect(zstdDecompressInto(theirs, MiB, out)).toBe(MiB)
    expect(Buffer.compare(out, plain)).toBe(0)
    const ours = compress('zstd', plain, 3)
    expect(ours.length).toBeLessThan(plain.length * 0.6)
    expect(Buffer.compare(decompress('zstd', ours, MiB), plain)).toBe(0)
  })

  it('many levels in turn: every chunk round-trips, and a higher level compresses smaller', () => {
    const plain = textLike(MiB, 12)
    const sizes = new Map<number, number>()
    for (const level of [1, 3, 9, 5, 7, 19, 1, 9]) {
      const payload = compress('zstd', plain, level)
      if (!sizes.has(level)) sizes.set(level, payload.length)
      expect(payload.length).toBe(sizes.get(level))
      expect(Buffer.compare(decompress('zstd', payload, MiB), plain)).toBe(0)
    }
    expect(sizes.get(9)).toBeLessThan(sizes.get(1)!)
  })

  it('the same chunk compresses to the same bytes every time', () => {
    const plain = textLike(MiB, 16)
    const first = compress('zstd', plain, 2)
    for (let i = 0; i < 3; i++) expect(Buffer.compare(compress('zstd', plain, 2), first)).toBe(0)
  })

  it('never writes past rawLength: the rest of the buffer is untouched', () => {
    const plain = textLike(300_000, 13)
    const payload = compress('zstd', plain)
    const out = new Uint8Array(400_000).fill(0xee)
    expect(() => zstdDecompressInto(payload, 100_000, out)).toThrow(ZstdOutputError)
    expect(out.subarray(100_000).every((b) => b === 0xee)).toBe(true)
    expect(roundTrips(1)).toBe(true)
  })

  it('two frames back to back are refused: too long, or short of rawLength', () => {
    const half = textLike(64 * 1024, 14)
    const one = compress('zstd', half)
    const two = Buffer.concat([one, one])
    expect(() => decompress('zstd', two, half.length)).toThrow(/inflates past/)
    // A chunk is one frame: what follows the first is not read, so the sum comes out short.
    expect(() => decompress('zstd', two, 2 * half.length)).toThrow(/produced 65536 bytes, expected 131072/)
    expect(roundTrips(2)).toBe(true)
  })

  it('a truncated or corrupt frame is a DecompressionError, and the next chunk decodes', () => {
    const plain = textLike(MiB, 15)
    const payload = compress('zstd', plain)
    expect(() => decompress('zstd', payload.subarray(0, payload.length >> 1), MiB)).toThrow(
      DecompressionError,
    )
    expect(roundTrips(3)).toBe(true)
    const corrupt = payload.slice()
    corrupt[0] = corrupt[0]! ^ 0xff // the magic number
    expect(() => decompress('zstd', corrupt, MiB)).toThrow(/is corrupt/)
    expect(roundTrips(4)).toBe(true)
    const noise = randomData(4096, 5)
    expect(() => decompress('zstd', noise, MiB)).toThrow(DecompressionError)
    expect(roundTrips(5)).toBe(true)
  })

  it('compressing into a buffer shorter than the result says so instead of writing past it', () => {
    const plain = randomData(64 * 1024, 6)
    const out = new Uint8Array(zstdBound(plain.length) + 8).fill(0xee)
    expect(() => zstdCompressInto(plain, 1, out.subarray(0, 1000))).toThrow(ZstdOutputError)
    expect(out.subarray(1000).every((b) => b === 0xee)).toBe(true)
    expect(roundTrips(6)).toBe(true)
  })
})

describe('zstd one-shot, where node:zlib has no handle to keep (the same contract)', () => {
  it('round-trips with the kept contexts both ways, and a higher level compresses smaller', () => {
    const plain = textLike(MiB, 21)
    const out = new Uint8Array(zstdBound(plain.length))
    const n1 = zstdCompressOneShot(plain, 1, out)
    const back = new Uint8Array(MiB)
    expect(zstdDecompressInto(out.subarray(0, n1), MiB, back)).toBe(MiB)
    expect(Buffer.compare(back, plain)).toBe(0)
    const ours = new Uint8Array(zstdBound(plain.length))
    const n9 = zstdCompressInto(plain, 9, ours)
    back.fill(0)
    expect(zstdDecompressOneShot(ours.subarray(0, n9), MiB, back)).toBe(MiB)
    expect(Buffer.compare(back, plain)).toBe(0)
    expect(zstdCompressOneShot(plain, 9, out)).toBeLessThan(n1)
  })

  it('never writes past rawLength, and refuses a frame that inflates past it', () => {
    const plain = textLike(300_000, 22)
    const payload = compress('zstd', plain)
    const out = new Uint8Array(400_000).fill(0xee)
    expect(() => zstdDecompressOneShot(payload, 100_000, out)).toThrow(ZstdOutputError)
    expect(out.every((b) => b === 0xee)).toBe(true)
  })

  it('a truncated or corrupt frame throws, and writes nothing', () => {
    const plain = textLike(200_000, 23)
    const payload = compress('zstd', plain)
    const out = new Uint8Array(200_000).fill(0xee)
    expect(() => zstdDecompressOneShot(payload.subarray(0, payload.length >> 1), 200_000, out)).toThrow()
    const corrupt = payload.slice()
    corrupt[0] = corrupt[0]! ^ 0xff
    expect(() => zstdDecompressOneShot(corrupt, 200_000, out)).toThrow()
    expect(out.every((b) => b === 0xee)).toBe(true)
  })

  it('compressing into a buffer shorter than the result says so instead of writing past it', () => {
    const plain = randomData(64 * 1024, 24)
    const out = new Uint8Array(2000).fill(0xee)
    expect(() => zstdCompressOneShot(plain, 1, out.subarray(0, 1000))).toThrow(ZstdOutputError)
    expect(out.every((b) => b === 0xee)).toBe(true)
  })
})
