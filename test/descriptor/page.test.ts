import { describe, expect, it } from 'vitest'
import {
  checkRows,
  type DescriptorHeader,
  decodePage,
  encodePage,
  encodeRow,
  ROW_SIZE,
} from '../../src/descriptor/index.ts'
import { DescriptorInvalidError, InvalidArgumentError } from '../../src/errors.ts'
import { CDC_SMALL, cdcEntries, FIXED_64K, fixedEntries, hex, sizeOf } from './helpers.ts'

const plain = (es: readonly { offset: number; length: number; hash: Uint8Array }[]) =>
  es.map((e) => ({ offset: e.offset, length: e.length, hash: hex(e.hash) }))

describe('page encoding', () => {
  it('round-trips rows, including offsets above 2^32 and up to 2^53 - 1', () => {
    const big = [
      { offset: 2 ** 32 + 5, length: 10, hash: new Uint8Array(32).fill(1) },
      { offset: 2 ** 32 + 15, length: 2 ** 32 - 1, hash: new Uint8Array(32).fill(2) },
    ]
    for (const entries of [fixedEntries(17), cdcEntries(5), big, []]) {
      const bytes = encodePage(entries)
      expect(bytes.length).toBe(entries.length * ROW_SIZE)
      expect(plain(decodePage(bytes, entries.length))).toEqual(plain(entries))
    }
    const edge = [{ offset: Number.MAX_SAFE_INTEGER - 1, length: 1, hash: new Uint8Array(32) }]
    expect(decodePage(encodePage(edge), 1)[0]!.offset).toBe(Number.MAX_SAFE_INTEGER - 1)
  })

  it('row layout is offset u64 BE, length u32 BE, hash', () => {
    const row = encodeRow({ offset: 0x0102030405, length: 0x0a0b0c0d, hash: new Uint8Array(32).fill(0xee) })
    expect(hex(row)).toBe(`00000001020304050a0b0c0d${'ee'.repeat(32)}`)
  })

  it('decoded entries do not alias the input, even a Buffer', () => {
    const entries = fixedEntries(3)
    const buf = Buffer.from(encodePage(entries))
    const back = decodePage(buf, 3)
    buf.fill(0)
    expect(plain(back)).toEqual(plain(entries))
  })

  it('strict: DescriptorInvalidError for wrong size, zero length, gaps, wrong first offset, huge offsets', () => {
    const entries = fixedEntries(4)
    const bytes = encodePage(entries)
    expect(() => decodePage(bytes.subarray(0, bytes.length - 1), 4)).toThrow(DescriptorInvalidError)
    expect(() => decodePage(bytes, 3)).toThrow(DescriptorInvalidError)
    expect(() => decodePage(bytes, 5)).toThrow(DescriptorInvalidError)
    expect(() => decodePage(bytes, 4, 1)).toThrow(DescriptorInvalidError)
    expect(plain(decodePage(bytes, 4, 0))).toEqual(plain(entries))

    const zero = bytes.slice()
    new DataView(zero.buffer).setUint32(ROW_SIZE + 8, 0)
    expect(() => decodePage(zero, 4)).toThrow(DescriptorInvalidError)

    const gap = bytes.slice()
    new DataView(gap.buffer).setUint32(2 * ROW_SIZE + 4, 3 * 65536 + 1)
    expect(() => decodePage(gap, 4)).toThrow(DescriptorInvalidError)

    const huge = bytes.slice()
    new DataView(huge.buffer).setUint32(0, 0x00200000) // 2^53
    expect(() => decodePage(huge, 4)).toThrow(DescriptorInvalidError)

    const overflow = encodePage([
      { offset: Number.MAX_SAFE_INTEGER - 1, length: 1, hash: new Uint8Array(32) },
    ])
    new DataView(overflow.buffer).setUint32(8, 2)
    expect(() => decodePage(overflow, 1)).toThrow(DescriptorInvalidError)

    expect(() => decodePage(bytes, -1)).toThrow(InvalidArgumentError)
    expect(() => encodePage([{ offset: 0, length: 0, hash: new Uint8Array(32) }])).toThrow(
      InvalidArgumentError,
    )
  })
})

describe('chunking rules on rows (checkRows)', () => {
  const fixed = fixedEntries(40)
  const fixedHeader: DescriptorHeader = {
    version: 1,
    chunking: FIXED_64K,
    totalSize: sizeOf(fixed),
    leafCount: 40,
    pageSize: 16,
    root: new Uint8Array(32),
  }
  const cdc = cdcEntries(40)
  const cdcHeader: DescriptorHeader = { ...fixedHeader, chunking: CDC_SMALL, totalSize: sizeOf(cdc) }

  it('accepts every page of valid tables', () => {
    for (const [h, es] of [
      [fixedHeader, fixed],
      [cdcHeader, cdc],
    ] as const) {
      for (let p = 0; p * 16 < es.length; p++) checkRows(h, p * 16, es.slice(p * 16, p * 16 + 16))
    }
  })

  it('fixed: a short chunk before the end, a wrong offset, a wrong last length', () => {
    const short = fixed.slice(0, 16).map((e, i) => (i === 3 ? { ...e, length: 100 } : e))
    expect(() => checkRows(fixedHeader, 0, short)).toThrow(DescriptorInvalidError)
    const shifted = fixed.slice(16, 32).map((e) => ({ ...e, offset: e.offset + 65536 }))
    expect(() => checkRows(fixedHeader, 16, shifted)).toThrow(DescriptorInvalidError)
    const tail = fixed.slice(32).map((e, i, a) => (i === a.length - 1 ? { ...e, length: e.length - 1 } : e))
    expect(() => checkRows(fixedHeader, 32, tail)).toThrow(DescriptorInvalidError)
  })

  it('cdc: too long, too short in the middle, impossible start, impossible tail, end past the size', () => {
    const page = cdc.slice(16, 32)
    const long = page.map((e, i) => (i === 2 ? { ...e, length: 4097 } : e))
    expect(() => checkRows(cdcHeader, 16, long)).toThrow(DescriptorInvalidError)
    const short = page.map((e, i) => (i === 2 ? { ...e, length: 255 } : e))
    expect(() => checkRows(cdcHeader, 16, short)).toThrow(DescriptorInvalidError)
    const early = page.map((e) => ({ ...e, offset: e.offset - cdc[16]!.offset + 100 }))
    expect(() => checkRows(cdcHeader, 16, early)).toThrow(DescriptorInvalidError)
    // page 1 moved so that it starts at a reachable offset but leaves 100 bytes for 8 more leaves
    const pageBytes = sizeOf(page) - page[0]!.offset
    const start = cdcHeader.totalSize - 100 - pageBytes
    expect(start).toBeGreaterThanOrEqual(16 * 256)
    expect(start).toBeLessThanOrEqual(16 * 4096)
    const late = page.map((e) => ({ ...e, offset: e.offset - page[0]!.offset + start }))
    expect(() => checkRows(cdcHeader, 16, late)).toThrow(DescriptorInvalidError)
    expect(() => checkRows({ ...cdcHeader, totalSize: cdcHeader.totalSize - 1 }, 32, cdc.slice(32))).toThrow(
      DescriptorInvalidError,
    )
    expect(() => checkRows(cdcHeader, 30, cdc.slice(30, 41).concat(cdc[0]!))).toThrow(DescriptorInvalidError)
  })
})
