import { constants as zc, zstdCompressSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { CodecUnsupportedError, DecompressionError, InvalidArgumentError } from '../../src/errors.ts'
import type { Codec } from '../../src/types.ts'
import { MiB } from '../../src/types.ts'
import {
  compress,
  compressByPolicy,
  decompress,
  MAX_RAW_LENGTH,
  owned,
  ownsBuffer,
} from '../../src/workers/codecs.ts'
import { lz4Compress, lz4CompressedLength, lz4MemoryBytes } from '../../src/workers/lz4.ts'
import { logLines, prng, randomData, textLike } from './data.ts'

const CODECS: Codec[] = ['none', 'lz4', 'zstd']
const INPUTS: [string, Uint8Array][] = [
  ['empty', new Uint8Array(0)],
  ['1 byte', new Uint8Array([42])],
  ['255 bytes text', textLike(255)],
  ['64 KiB + 1 random', randomData(64 * 1024 + 1, 7)],
  ['1 MiB random', randomData(MiB, 2)],
  ['1 MiB text-like', textLike(MiB, 3)],
  ['1 MiB log lines', logLines(MiB, 5)],
]

function expectDecompressionError(fn: () => unknown): void {
  expect(fn).toThrow(DecompressionError)
}

describe('codecs round trip', () => {
  for (const codec of CODECS) {
    for (const [name, plain] of INPUTS) {
      it(`${codec}: ${name}`, () => {
        const payload = compress(codec, plain)
        if (codec === 'none') expect(payload).toBe(plain)
        // A buffer of its own, exactly as long: moved between threads and freed alone.
        else expect(ownsBuffer(payload)).toBe(true)
        const out = decompress(codec, payload, plain.length)
        expect(out.length).toBe(plain.length)
        expect(Buffer.compare(out, plain)).toBe(0)
      })
    }
  }

  for (const codec of ['lz4', 'zstd'] as const) {
    it(`${codec}: decompresses into a recycled buffer`, () => {
      const plain = textLike(300_000, 9)
      const into = new Uint8Array(MiB).fill(0xee)
      const out = decompress(codec, compress(codec, plain), plain.length, into)
      expect(out.buffer).toBe(into.buffer)
      expect(out.byteOffset).toBe(0)
      expect(out.length).toBe(plain.length)
      expect(Buffer.compare(out, plain)).toBe(0)
      expect(() => decompress(codec, compress(codec, plain), plain.length, new Uint8Array(10))).toThrow(
        InvalidArgumentError,
      )
    })
  }

  it("lz4CompressedLength is lz4Compress's length, without the copy", () => {
    for (const data of [textLike(16 * 1024, 8), randomData(16 * 1024, 8), new Uint8Array(0)]) {
      expect(lz4CompressedLength(data)).toBe(lz4Compress(data).length)
    }
  })

  it('text shrinks and random does not', () => {
    const text = textLike(MiB, 4)
    expect(compress('lz4', text).length).toBeLessThan(0.8 * MiB)
    expect(compress('zstd', text).length).toBeLessThan(0.6 * MiB)
    expect(compress('zstd', randomData(MiB, 5)).length).toBeGreaterThan(MiB)
  })
})

describe('decompress rejects bad input with a typed error', () => {
  const plain = textLike(200_000, 11)

  for (const codec of CODECS) {
    it(`${codec}: wrong rawLength`, () => {
      const payload = compress(codec, plain)
      expectDecompressionError(() => decompress(codec, payload, plain.length - 1))
      expectDecompressionError(() => decompress(codec, payload, plain.length + 1))
      expectDecompressionError(() => decompress(codec, payload, 0))
    })

    it(`${codec}: truncated payload`, () => {
      const payload = compress(codec, plain)
      expectDecompressionError(() =>
        decompress(codec, payload.subarray(0, payload.length >> 1), plain.length),
      )
      expectDecompressionError(() => decompress(codec, new Uint8Array(0), plain.length))
    })

    it(`${codec}: random corruption either fails typed or yields exactly rawLength bytes`, () => {
      const payload = compress(codec, plain)
      const r = prng(99)
      let typed = 0
      for (let i = 0; i < 40; i++) {
        const bad = payload.slice()
        for (let k = 0; k < 4; k++) bad[Math.floor(r() * bad.length)]! ^= 1 + Math.floor(r() * 255)
        try {
          expect(decompress(codec, bad, plain.length).length).toBe(plain.length)
        } catch (err) {
          expect(err).toBeInstanceOf(DecompressionError)
          typed++
        }
      }
      // `none` has no structure to break; the compressed formats must notice most corruption.
      if (codec !== 'none') expect(typed).toBeGreaterThan(0)
    })
  }

  it('lz4: a size header that lies is refused before the wasm allocates it', () => {
    const payload = compress('lz4', plain)
    const before = lz4MemoryBytes()
    for (const claim of [0x7fffffff, 0xffffffff, 64 * MiB]) {
      const bad = payload.slice()
      new DataView(bad.buffer).setUint32(0, claim, true)
      expectDecompressionError(() => decompress('lz4', bad, plain.length))
      // Even when the caller's rawLength agrees with the lie, the payload is too short to be real
      // (one lz4 byte expands to at most 255).
      if (claim <= MAX_RAW_LENGTH) expectDecompressionError(() => decompress('lz4', bad, claim))
    }
    expect(lz4MemoryBytes()).toBeLessThanOrEqual(Math.max(before, 16 * MiB))
  })

  it('lz4: maximal expansion (zeros) still decodes', () => {
    for (const n of [16, 1000, MiB, 4 * MiB]) {
      const zeros = new Uint8Array(n)
      expect(decompress('lz4', compress('lz4', zeros), n).length).toBe(n)
    }
  })

  it('zstd: a bomb stops at rawLength', () => {
    const bomb = zstdCompressSync(new Uint8Array(32 * MiB), { params: { [zc.ZSTD_c_compressionLevel]: 1 } })
    expect(bomb.length).toBeLessThan(64 * 1024)
    let caught: unknown
    try {
      decompress('zstd', bomb, MiB)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DecompressionError)
    expect((caught as Error).message).toMatch(/inflates past 1048576 bytes/)
    // The kept context is ready for the next chunk.
    const plain = textLike(MiB, 3)
    expect(Buffer.compare(decompress('zstd', compress('zstd', plain), MiB), plain)).toBe(0)
  })

  it('zstd: a payload longer than any encoder could produce is refused', () => {
    expectDecompressionError(() => decompress('zstd', randomData(2 * MiB), MiB))
  })

  it('unknown codec and out-of-range rawLength', () => {
    expect(() => decompress('brotli' as Codec, plain, plain.length)).toThrow(CodecUnsupportedError)
    expect(() => compress('brotli' as Codec, plain)).toThrow(CodecUnsupportedError)
    expect(() => decompress('none', plain, MAX_RAW_LENGTH + 1)).toThrow(InvalidArgumentError)
    expect(() => decompress('none', plain, -1)).toThrow(InvalidArgumentError)
    expect(() => decompress('none', plain, 1.5)).toThrow(InvalidArgumentError)
  })
})

describe('compressByPolicy', () => {
  const random = randomData(MiB, 21)
  const text = textLike(MiB, 22)

  it("'auto' sends random data as none and text compressed", () => {
    const r = compressByPolicy('auto', random)
    expect(r.codec).toBe('none')
    expect(r.payload).toBe(random)
    const t = compressByPolicy('auto', text)
    expect(t.codec).not.toBe('none')
    expect(t.payload.length).toBeLessThanOrEqual(0.9 * text.length)
    expect(Buffer.compare(decompress(t.codec, t.payload, text.length), text)).toBe(0)
  })

  it('a chunk that does not shrink by 10% is sent as none, whatever the policy', () => {
    for (const policy of ['lz4', 'zstd', 'auto'] as const) {
      expect(compressByPolicy(policy, random).codec).toBe('none')
      expect(compressByPolicy(policy, new Uint8Array(0)).codec).toBe('none')
      expect(compressByPolicy(policy, new Uint8Array([1])).codec).toBe('none')
    }
    // 91% random + 9% zeros: the codec saves under 10%.
    const mostly = randomData(100_000, 23)
    mostly.fill(0, 0, 9_000)
    expect(compressByPolicy('zstd', mostly).codec).toBe('none')
  })

  it('explicit policies use their codec when it pays', () => {
    expect(compressByPolicy('lz4', text).codec).toBe('lz4')
    expect(compressByPolicy('zstd', text).codec).toBe('zstd')
    expect(compressByPolicy('none', text)).toEqual({ codec: 'none', payload: text })
  })

  it("'auto' probes the middle: a compressible header on random data does not fool it", () => {
    const mixed = randomData(MiB, 24)
    mixed.fill(0, 0, 128 * 1024)
    expect(compressByPolicy('auto', mixed).codec).toBe('none')
  })
})

describe('owned', () => {
  it('copies views and keeps owners', () => {
    const whole = new Uint8Array(16)
    expect(owned(whole)).toBe(whole)
    const view = Buffer.from('abcdef').subarray(1, 3)
    const copy = owned(view)
    expect(ownsBuffer(copy)).toBe(true)
    expect(copy.buffer).not.toBe(view.buffer)
    expect(Buffer.from(copy).toString()).toBe('bc')
  })
})
