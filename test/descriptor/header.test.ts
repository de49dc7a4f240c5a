import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  CDC_HEADER_SIZE,
  cidFromString,
  cidToString,
  contentId,
  type DescriptorHeader,
  decodeHeader,
  encodeHeader,
  FIXED_HEADER_SIZE,
  fixedLeafCount,
  leafCountBounds,
  VerifiedLeafTable,
} from '../../src/descriptor/index.ts'
import { DescriptorInvalidError, InvalidArgumentError, UnsupportedVersionError } from '../../src/errors.ts'
import type { ChunkingParams } from '../../src/types.ts'
import { hex, unhex } from './helpers.ts'

const ROOT = new Uint8Array(32).fill(0xab)
const fixedHeader: DescriptorHeader = {
  version: 1,
  chunking: { kind: 'fixed', size: 1024 * 1024 },
  totalSize: 5 * 1024 * 1024 + 3,
  leafCount: 6,
  pageSize: 1024,
  root: ROOT,
}
const cdcHeader: DescriptorHeader = {
  version: 1,
  chunking: { kind: 'cdc', minSize: 256 * 1024, avgSize: 1024 * 1024, maxSize: 4 * 1024 * 1024 },
  totalSize: 10 * 2 ** 40,
  leafCount: 10 * 2 ** 20,
  pageSize: 65536,
  root: ROOT,
}

interface DescriptorVector {
  name: string
  chunking: ChunkingParams
  totalSize: number
  leafCount: number
  pageSize: number
  root: string
  header: string
  cid: string
  cidString: string
  pages: { rows: string; pageRoot: string; proof: string[] }[]
}
const vectors = (
  JSON.parse(readFileSync(new URL('../vectors/descriptor.json', import.meta.url), 'utf8')) as {
    cases: DescriptorVector[]
  }
).cases

describe('descriptor header', () => {
  it('round-trips fixed and cdc headers at their exact sizes', () => {
    for (const h of [fixedHeader, cdcHeader, { ...fixedHeader, totalSize: 0, leafCount: 0 }]) {
      const bytes = encodeHeader(h)
      expect(bytes.length).toBe(h.chunking.kind === 'fixed' ? FIXED_HEADER_SIZE : CDC_HEADER_SIZE)
      const back = decodeHeader(bytes)
      expect({ ...back, root: hex(back.root) }).toEqual({ ...h, root: hex(h.root) })
    }
    expect(FIXED_HEADER_SIZE).toBe(62)
    expect(CDC_HEADER_SIZE).toBe(70)
  })

  it('the decoded root does not alias the input bytes', () => {
    const bytes = encodeHeader(fixedHeader)
    const back = decodeHeader(Buffer.from(bytes))
    bytes.fill(0)
    expect(hex(back.root)).toBe(hex(ROOT))
  })

  for (const v of vectors) {
    it(`matches the Python vector "${v.name}" (header bytes, cid, cid text, pages)`, () => {
      const header: DescriptorHeader = {
        version: 1,
        chunking: v.chunking,
        totalSize: v.totalSize,
        leafCount: v.leafCount,
        pageSize: v.pageSize,
        root: unhex(v.root),
      }
      const bytes = encodeHeader(header)
      expect(hex(bytes)).toBe(v.header)
      expect(hex(contentId(bytes))).toBe(v.cid)
      expect(cidToString(contentId(bytes))).toBe(v.cidString)
      expect(hex(cidFromString(v.cidString))).toBe(v.cid)
      const table = new VerifiedLeafTable(decodeHeader(unhex(v.header)))
      expect(table.pageCount).toBe(v.pages.length)
      v.pages.forEach((p, i) => {
        const entries = table.acceptPage(i, unhex(p.rows), p.proof.map(unhex))
        expect(entries.length).toBe(table.pageRange(i).end - table.pageRange(i).start)
      })
    })
  }

  it('fixedLeafCount and leafCountBounds', () => {
    expect(fixedLeafCount(0, 65536)).toBe(0)
    expect(fixedLeafCount(1, 65536)).toBe(1)
    expect(fixedLeafCount(65536, 65536)).toBe(1)
    expect(fixedLeafCount(65537, 65536)).toBe(2)
    const cdc = { kind: 'cdc', minSize: 100, avgSize: 128, maxSize: 200 } as const
    expect(leafCountBounds(cdc, 0)).toEqual({ min: 0, max: 0 })
    expect(leafCountBounds(cdc, 1)).toEqual({ min: 1, max: 1 })
    expect(leafCountBounds(cdc, 201)).toEqual({ min: 2, max: 3 })
  })
})

/** Encoded fixedHeader with one field overwritten. Offsets: see the table in header.ts. */
function patched(patch: (view: DataView, bytes: Uint8Array) => void, base = fixedHeader): Uint8Array {
  const bytes = encodeHeader(base)
  patch(new DataView(bytes.buffer), bytes)
  return bytes
}
const FIXED = { size: 6, total: 10, leaves: 18, page: 26 }
const CDC = { min: 6, avg: 10, max: 14, total: 18, leaves: 26, page: 34 }

describe('strict header decoding', () => {
  const invalid: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['truncated before the kind', encodeHeader(fixedHeader).subarray(0, 5)],
    ['bad magic', patched((_, b) => (b[0] = 0x58))],
    ['unknown chunking kind', patched((v) => v.setUint8(5, 2))],
    ['one byte short', encodeHeader(fixedHeader).subarray(0, FIXED_HEADER_SIZE - 1)],
    ['one byte long', Uint8Array.of(...encodeHeader(fixedHeader), 0)],
    ['cdc one byte short', encodeHeader(cdcHeader).subarray(0, CDC_HEADER_SIZE - 1)],
    ['fixed kind with cdc length', Uint8Array.of(...encodeHeader(fixedHeader), 0, 0, 0, 0, 0, 0, 0, 0)],
    ['fixed size not a power of two', patched((v) => v.setUint32(FIXED.size, 3 * 65536))],
    ['fixed size below 64 KiB', patched((v) => v.setUint32(FIXED.size, 32768))],
    ['fixed size above 64 MiB', patched((v) => v.setUint32(FIXED.size, 128 * 1024 * 1024))],
    ['cdc min > avg', patched((v) => v.setUint32(CDC.min, 2 * 1024 * 1024), cdcHeader)],
    ['cdc avg > max', patched((v) => v.setUint32(CDC.max, 512 * 1024), cdcHeader)],
    ['cdc avg not a power of two', patched((v) => v.setUint32(CDC.avg, 1000 * 1024), cdcHeader)],
    ['cdc max above 64 MiB', patched((v) => v.setUint32(CDC.max, 65 * 1024 * 1024), cdcHeader)],
    ['cdc min below 64', patched((v) => v.setUint32(CDC.min, 63), cdcHeader)],
    ['page size not a power of two', patched((v) => v.setUint32(FIXED.page, 1000))],
    ['page size below 16', patched((v) => v.setUint32(FIXED.page, 8))],
    ['page size above 65536', patched((v) => v.setUint32(FIXED.page, 131072))],
    ['cdc page size 0', patched((v) => v.setUint32(CDC.page, 0), cdcHeader)],
    ['total size above 2^53-1', patched((v) => v.setBigUint64(FIXED.total, 2n ** 53n))],
    ['leaf count above 2^53-1', patched((v) => v.setBigUint64(FIXED.leaves, 2n ** 60n))],
    ['size 0 with leaves', patched((v) => v.setBigUint64(FIXED.total, 0n))],
    ['leaves 0 with size', patched((v) => v.setBigUint64(FIXED.leaves, 0n))],
    ['fixed leaf count != ceil(size / chunk)', patched((v) => v.setBigUint64(FIXED.leaves, 7n))],
    ['leaf count > size', patched((v) => v.setBigUint64(FIXED.total, 3n))],
    ['cdc too few leaves for max size', patched((v) => v.setBigUint64(CDC.leaves, 1n), cdcHeader)],
    ['cdc too many leaves for min size', patched((v) => v.setBigUint64(CDC.leaves, 2n ** 40n), cdcHeader)],
  ]
  for (const [what, bytes] of invalid) {
    it(`DescriptorInvalidError: ${what}`, () => {
      expect(() => decodeHeader(bytes)).toThrow(DescriptorInvalidError)
    })
  }

  it('UnsupportedVersionError for any other version, checked before the length', () => {
    expect(() => decodeHeader(patched((v) => v.setUint8(4, 2)))).toThrow(UnsupportedVersionError)
    expect(() => decodeHeader(patched((v) => v.setUint8(4, 0)))).toThrow(UnsupportedVersionError)
    const future = Uint8Array.of(...patched((v) => v.setUint8(4, 9)), 1, 2, 3)
    expect(() => decodeHeader(future)).toThrow(UnsupportedVersionError)
  })

  it('the patch offsets hit the fields they name (so the cases above test what they say)', () => {
    const h = decodeHeader(patched((v) => v.setBigUint64(FIXED.total, 6n * 1024n * 1024n)))
    expect(h.totalSize).toBe(6 * 1024 * 1024)
    const c = decodeHeader(patched((v) => v.setUint32(CDC.page, 16), cdcHeader))
    expect(c.pageSize).toBe(16)
  })

  it('encodeHeader refuses what decodeHeader would refuse', () => {
    expect(() => encodeHeader({ ...fixedHeader, pageSize: 1000 })).toThrow(DescriptorInvalidError)
    expect(() => encodeHeader({ ...fixedHeader, root: new Uint8Array(31) })).toThrow(DescriptorInvalidError)
    expect(() => encodeHeader({ ...fixedHeader, version: 2 })).toThrow(DescriptorInvalidError)
    expect(() => encodeHeader({ ...fixedHeader, leafCount: 5 })).toThrow(DescriptorInvalidError)
  })
})

describe('content id text form', () => {
  const cid = contentId(encodeHeader(fixedHeader))

  it('round-trips as "b" + 52 lowercase base32 characters', () => {
    const s = cidToString(cid)
    expect(s).toMatch(/^b[a-z2-7]{52}$/)
    expect(hex(cidFromString(s))).toBe(hex(cid))
    expect(hex(cidFromString(cidToString(new Uint8Array(32))))).toBe(hex(new Uint8Array(32)))
    expect(hex(cidFromString(cidToString(new Uint8Array(32).fill(255))))).toBe('ff'.repeat(32))
  })

  it('strict parse: InvalidArgumentError for every malformed spelling', () => {
    const s = cidToString(cid)
    const bad = [
      '',
      s.slice(1),
      `B${s.slice(1)}`,
      `z${s.slice(1)}`,
      s.toUpperCase(),
      s.slice(0, -1),
      `${s}a`,
      `${s.slice(0, 10)}1${s.slice(11)}`,
      `${s.slice(0, 10)}=${s.slice(11)}`,
      // last character carries 4 spare bits that must be zero: 'b' = 1 sets one
      `${s.slice(0, -1)}${String.fromCharCode(((s.charCodeAt(s.length - 1) - 97) & ~15) + 97 + 1)}`,
    ]
    for (const b of bad) expect(() => cidFromString(b), b).toThrow(InvalidArgumentError)
    expect(() => cidToString(new Uint8Array(31))).toThrow(InvalidArgumentError)
  })
})
