import { describe, expect, it } from 'vitest'
import {
  DEFAULT_CDC,
  DEFAULT_FIXED,
  FIXED_CHUNK_SIZES,
  formatChunking,
  formatSize,
  maxChunkSize,
  parseChunking,
  parseSize,
  verifyChunkingParams,
} from '../../src/chunking/params.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import { type ChunkingParams, GiB, KiB, MiB } from '../../src/types.ts'

const cdc = (minSize: number, avgSize: number, maxSize: number): ChunkingParams => ({
  kind: 'cdc',
  minSize,
  avgSize,
  maxSize,
})

describe('verifyChunkingParams', () => {
  it('accepts the standard sizes, the defaults and the bounds', () => {
    for (const size of FIXED_CHUNK_SIZES) verifyChunkingParams({ kind: 'fixed', size })
    verifyChunkingParams(DEFAULT_FIXED)
    verifyChunkingParams(DEFAULT_CDC)
    verifyChunkingParams({ kind: 'fixed', size: 64 * KiB })
    verifyChunkingParams({ kind: 'fixed', size: 64 * MiB })
    verifyChunkingParams(cdc(64 * KiB, 64 * KiB, 64 * KiB))
    verifyChunkingParams(cdc(64 * KiB, 64 * MiB, 64 * MiB))
    verifyChunkingParams(cdc(100_000, 128 * KiB, 300_001))
  })

  it.each<[string, unknown, RegExp]>([
    ['fixed not a power of two', { kind: 'fixed', size: 1_000_000 }, /power of two.*try fixed:1m/],
    ['fixed too small', { kind: 'fixed', size: 32 * KiB }, /between 64 KiB and 64 MiB/],
    ['fixed too large', { kind: 'fixed', size: 128 * MiB }, /between 64 KiB and 64 MiB/],
    ['fixed not a number', { kind: 'fixed', size: '1m' }, /power of two/],
    ['fixed fractional', { kind: 'fixed', size: 65536.5 }, /power of two/],
    ['cdc min too small', cdc(32 * KiB, 1 * MiB, 4 * MiB), /at least 64 KiB/],
    ['cdc max too large', cdc(512 * KiB, 1 * MiB, 128 * MiB), /at most 64 MiB/],
    ['cdc avg not a power of two', cdc(512 * KiB, 1_000_000, 4 * MiB), /power of two/],
    ['cdc min > avg', cdc(2 * MiB, 1 * MiB, 4 * MiB), /min <= avg <= max.*cdc:512KiB:1MiB:4MiB/],
    ['cdc avg > max', cdc(512 * KiB, 4 * MiB, 2 * MiB), /min <= avg <= max/],
    ['cdc NaN', cdc(Number.NaN, 1 * MiB, 4 * MiB), /whole number/],
    ['unknown kind', { kind: 'rabin', size: 1 }, /unknown chunking kind "rabin"/],
    ['not an object', null, /must be an object/],
  ])('rejects %s', (_name, p, message) => {
    expect(() => verifyChunkingParams(p as ChunkingParams)).toThrow(InvalidArgumentError)
    expect(() => verifyChunkingParams(p as ChunkingParams)).toThrow(message)
  })
})

describe('maxChunkSize', () => {
  it('is the fixed size or the CDC maximum', () => {
    expect(maxChunkSize({ kind: 'fixed', size: 2 * MiB })).toBe(2 * MiB)
    expect(maxChunkSize(DEFAULT_CDC)).toBe(4 * MiB)
  })
})

describe('sizes', () => {
  it.each<[string, number]>([
    ['65536', 65536],
    ['64k', 64 * KiB],
    ['64K', 64 * KiB],
    ['64KiB', 64 * KiB],
    ['1m', MiB],
    ['1 MiB', MiB],
    ['4mi', 4 * MiB],
    ['2g', 2 * GiB],
    ['10b', 10],
  ])('parses %s', (text, n) => {
    expect(parseSize(text)).toBe(n)
  })

  it.each(['', 'm', '1.5m', '-1m', '1x', '1 m b'])('refuses %j', (text) => {
    expect(() => parseSize(text)).toThrow(InvalidArgumentError)
  })

  it('refuses decimal units instead of guessing', () => {
    expect(() => parseSize('1MB')).toThrow(/ambiguous.*binary/)
  })

  it('formats in the largest exact binary unit', () => {
    expect(formatSize(4 * MiB)).toBe('4MiB')
    expect(formatSize(640 * KiB)).toBe('640KiB')
    expect(formatSize(2 * GiB)).toBe('2GiB')
    expect(formatSize(65537)).toBe('65537')
    expect(formatSize(0)).toBe('0')
  })
})

describe('parseChunking / formatChunking', () => {
  it.each<[string, ChunkingParams]>([
    ['fixed:1m', { kind: 'fixed', size: MiB }],
    ['fixed:4MiB', { kind: 'fixed', size: 4 * MiB }],
    ['FIXED:2m', { kind: 'fixed', size: 2 * MiB }],
    ['fixed', DEFAULT_FIXED],
    ['cdc', DEFAULT_CDC],
    ['cdc:256k:1m:4m', cdc(256 * KiB, MiB, 4 * MiB)],
    ['cdc:2m', cdc(MiB, 2 * MiB, 8 * MiB)],
  ])('parses %s', (spec, expected) => {
    expect(parseChunking(spec)).toEqual(expected)
  })

  it.each<[string, RegExp]>([
    ['rabin', /unknown chunking "rabin".*fixed.*cdc/],
    ['fixed:1m:2m', /unknown chunking/],
    ['cdc:1m:4m', /unknown chunking/],
    ['fixed:3m', /power of two/],
    ['cdc:1m:1m:512k', /min <= avg <= max/],
    ['fixed:1MB', /ambiguous/],
  ])('refuses %s', (spec, message) => {
    expect(() => parseChunking(spec)).toThrow(InvalidArgumentError)
    expect(() => parseChunking(spec)).toThrow(message)
  })

  it('round-trips through the canonical form', () => {
    const all: ChunkingParams[] = [
      ...FIXED_CHUNK_SIZES.map((size): ChunkingParams => ({ kind: 'fixed', size })),
      DEFAULT_CDC,
      cdc(100_000, 128 * KiB, 300_001),
      cdc(64 * KiB, 64 * MiB, 64 * MiB),
    ]
    for (const p of all) expect(parseChunking(formatChunking(p))).toEqual(p)
    expect(formatChunking(DEFAULT_CDC)).toBe('cdc:512KiB:1MiB:4MiB')
    expect(formatChunking({ kind: 'fixed', size: MiB })).toBe('fixed:1MiB')
  })
})
