/**
 * Shared fixtures for the protocol tests: a table of sample messages at interesting sizes, a
 * seeded PRNG, helpers to feed a decoder, and a naive reference codec written from frame.ts with
 * Buffer's own readers, so a layout slip in the real codec cannot hide behind itself.
 */

import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT, MIN_MAX_FRAME } from '../../src/protocol/frame.ts'
import {
  MAX_INDEX,
  MAX_PROOF_HASHES,
  MAX_RANGES,
  MAX_REQUEST_ID,
  type TransferMessage,
} from '../../src/protocol/messages.ts'
import { CODEC_IDS, CODECS, type Codec, codecFromId } from '../../src/types.ts'

/** Seeded test inputs (src/util/random.ts). */
import { mulberry32 as prng } from '../../src/util/random.ts'

export { prng }

export function bytes(n: number, seed = n): Uint8Array {
  const rand = prng(seed)
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256)
  return b
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export function wire(msg: TransferMessage, maxFrame = DEFAULT_MAX_FRAME): Uint8Array {
  return concat(encodeMessage(msg, maxFrame))
}

/** Pushes each piece in turn and collects every message the decoder yields, then finishes. */
export function decodeAll(pieces: Iterable<Uint8Array>, decoder = new FrameDecoder()): TransferMessage[] {
  const out: TransferMessage[] = []
  for (const p of pieces) {
    decoder.push(p)
    for (const m of decoder.frames()) out.push(m)
  }
  decoder.finish()
  return out
}

/** Cuts `b` at the given sorted offsets (views, no copies). */
export function cut(b: Uint8Array, at: readonly number[]): Uint8Array[] {
  const pieces: Uint8Array[] = []
  let from = 0
  for (const to of [...at, b.length]) {
    pieces.push(b.subarray(from, to))
    from = to
  }
  return pieces
}

export function randomCuts(length: number, count: number, rand: () => number): number[] {
  const at = new Set<number>()
  while (at.size < Math.min(count, length - 1)) at.add(1 + Math.floor(rand() * (length - 1)))
  return [...at].sort((x, y) => x - y)
}

const cid = bytes(32, 1)
const secret = bytes(16, 2)
const hash = (i: number): Uint8Array => bytes(32, 100 + i)

/** Every message type, at its smallest, largest and otherwise interesting shapes. */
export const SAMPLES: readonly (readonly [string, TransferMessage])[] = [
  ['hello, all codecs', { type: 'hello', version: 1, codecs: [...CODECS], maxFrame: DEFAULT_MAX_FRAME }],
  ['hello, no codecs, min frame', { type: 'hello', version: 1, codecs: [], maxFrame: MIN_MAX_FRAME }],
  [
    'hello, reordered, max frame',
    { type: 'hello', version: 1, codecs: ['zstd', 'none'], maxFrame: MAX_FRAME_LIMIT },
  ],
  ['get-header', { type: 'get-header', requestId: 1, cid }],
  ['header, empty', { type: 'header', requestId: 2, header: new Uint8Array(0) }],
  ['header, 256 bytes', { type: 'header', requestId: MAX_REQUEST_ID, header: bytes(256) }],
  ['get-pages, first', { type: 'get-pages', requestId: 3, cid, firstPage: 0, count: 1 }],
  ['get-pages, extremes', { type: 'get-pages', requestId: 4, cid, firstPage: MAX_INDEX, count: 0xffff_ffff }],
  ['page, bare', { type: 'page', requestId: 5, pageIndex: 0, entries: new Uint8Array(0), proof: [] }],
  [
    'page, full proof',
    {
      type: 'page',
      requestId: 6,
      pageIndex: 2 ** 40 + 3,
      entries: bytes(1000),
      proof: Array.from({ length: MAX_PROOF_HASHES }, (_, i) => hash(i)),
    },
  ],
  ['get-chunks, one range', { type: 'get-chunks', requestId: 7, cid, ranges: [{ start: 0, end: 1 }] }],
  [
    'get-chunks, 64 ranges',
    {
      type: 'get-chunks',
      requestId: 8,
      cid,
      ranges: Array.from({ length: MAX_RANGES }, (_, i) => ({
        start: i === MAX_RANGES - 1 ? MAX_INDEX - 1 : i * 2 ** 33,
        end: i === MAX_RANGES - 1 ? MAX_INDEX : i * 2 ** 33 + (i % 2 === 0 ? 2 ** 33 : 17),
      })),
    },
  ],
  [
    'get-chunks, adjacent',
    {
      type: 'get-chunks',
      requestId: 9,
      cid,
      ranges: [
        { start: 0, end: 5 },
        { start: 5, end: 9 },
      ],
    },
  ],
  [
    'chunk, none',
    { type: 'chunk', requestId: 10, index: 0, codec: 'none', rawLength: 300, payload: bytes(300) },
  ],
  [
    'chunk, empty',
    { type: 'chunk', requestId: 11, index: 1, codec: 'none', rawLength: 0, payload: new Uint8Array(0) },
  ],
  [
    'chunk, lz4',
    {
      type: 'chunk',
      requestId: 12,
      index: MAX_INDEX,
      codec: 'lz4',
      rawLength: 4 * 2 ** 20,
      payload: bytes(77),
    },
  ],
  [
    'chunk, zstd',
    {
      type: 'chunk',
      requestId: 13,
      index: 2 ** 32,
      codec: 'zstd',
      rawLength: 0xffff_ffff,
      payload: bytes(5),
    },
  ],
  ['end', { type: 'end', requestId: 14 }],
  ['cancel', { type: 'cancel', requestId: MAX_REQUEST_ID }],
  ['error, connection', { type: 'error', requestId: 0, code: 23, message: '' }],
  ['error, unicode', { type: 'error', requestId: 15, code: 14, message: 'nicht gefunden: €, 💾, 日本' }],
  ['error, 1 KiB', { type: 'error', requestId: 16, code: 0xffff, message: 'x'.repeat(1024) }],
  ['get-header, with secret', { type: 'get-header', requestId: 17, cid, secret }],
  ['get-pages, with secret', { type: 'get-pages', requestId: 18, cid, firstPage: 7, count: 2, secret }],
  [
    'get-chunks, 64 ranges with secret',
    {
      type: 'get-chunks',
      requestId: 19,
      cid,
      ranges: Array.from({ length: MAX_RANGES }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 })),
      secret,
    },
  ],
  ['get-have, with secret', { type: 'get-have', requestId: 20, cid, start: 3, count: 9, secret }],
]

// ---------------------------------------------------------------------------------------------
// Naive reference codec for a few types, straight from the table in src/protocol/frame.ts.

type RefMessage = Extract<TransferMessage, { type: 'hello' | 'get-chunks' | 'chunk' | 'error' | 'page' }>

export function refEncode(msg: RefMessage): Uint8Array {
  const parts: Buffer[] = []
  const u8 = (v: number) => parts.push(Buffer.from([v]))
  const u16 = (v: number) => parts.push(Buffer.from([v >> 8, v & 0xff]))
  const u32 = (v: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(v)
    parts.push(b)
  }
  const u64 = (v: number) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(v))
    parts.push(b)
  }
  const raw = (b: Uint8Array) => parts.push(Buffer.from(b))
  switch (msg.type) {
    case 'hello':
      u8(0x01)
      u16(msg.version)
      u32(msg.maxFrame)
      u8(msg.codecs.length)
      for (const c of msg.codecs) u8(CODEC_IDS[c])
      break
    case 'page':
      u8(0x13)
      u32(msg.requestId)
      u64(msg.pageIndex)
      u8(msg.proof.length)
      for (const p of msg.proof) raw(p)
      u32(msg.entries.length)
      raw(msg.entries)
      break
    case 'get-chunks':
      u8(0x14)
      u32(msg.requestId)
      raw(msg.cid)
      u8(msg.ranges.length)
      for (const r of msg.ranges) {
        u64(r.start)
        u64(r.end)
      }
      if (msg.secret !== undefined) raw(msg.secret)
      break
    case 'chunk':
      u8(0x15)
      u32(msg.requestId)
      u64(msg.index)
      u8(CODEC_IDS[msg.codec])
      u32(msg.rawLength)
      raw(msg.payload)
      break
    case 'error': {
      u8(0x22)
      u32(msg.requestId)
      u16(msg.code)
      const text = Buffer.from(msg.message, 'utf8')
      u16(text.length)
      raw(text)
      break
    }
  }
  const body = Buffer.concat(parts)
  const len = Buffer.alloc(4)
  len.writeUInt32BE(body.length)
  return new Uint8Array(Buffer.concat([len, body]))
}

/** Decodes exactly one whole frame; trusts its input (it is only fed our own encoder's output). */
export function refDecode(frame: Uint8Array): RefMessage {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.length)
  if (b.readUInt32BE(0) !== b.length - 4) throw new Error('reference: length prefix mismatch')
  let at = 5
  /** Advances past `n` bytes and returns where they start. */
  const take = (n: number): number => {
    at += n
    return at - n
  }
  const u8 = () => b.readUInt8(take(1))
  const u16 = () => b.readUInt16BE(take(2))
  const u32 = () => b.readUInt32BE(take(4))
  const u64 = () => Number(b.readBigUInt64BE(take(8)))
  const raw = (n: number) => new Uint8Array(b.subarray(take(n), at))
  const codec = (id: number): Codec => {
    const c = codecFromId(id)
    if (c === undefined) throw new Error(`reference: codec ${id}`)
    return c
  }
  switch (b[4]) {
    case 0x01: {
      const version = u16()
      const maxFrame = u32()
      const n = u8()
      return { type: 'hello', version, maxFrame, codecs: Array.from(raw(n), codec) }
    }
    case 0x13: {
      const requestId = u32()
      const pageIndex = u64()
      const p = u8()
      const proof = Array.from({ length: p }, () => raw(32))
      return { type: 'page', requestId, pageIndex, proof, entries: raw(u32()) }
    }
    case 0x14: {
      const requestId = u32()
      const cid = raw(32)
      const n = u8()
      const ranges = Array.from({ length: n }, () => ({ start: u64(), end: u64() }))
      return { type: 'get-chunks', requestId, cid, ranges, ...(at < b.length ? { secret: raw(16) } : {}) }
    }
    case 0x15: {
      const requestId = u32()
      const index = u64()
      const c = codec(u8())
      const rawLength = u32()
      return { type: 'chunk', requestId, index, codec: c, rawLength, payload: raw(b.length - at) }
    }
    case 0x22: {
      const requestId = u32()
      const code = u16()
      const n = u16()
      const message = b.toString('utf8', at, at + n)
      return { type: 'error', requestId, code, message }
    }
    default:
      throw new Error(`reference: type ${b[4]}`)
  }
}

export function isRefMessage(m: TransferMessage): m is RefMessage {
  return (
    m.type === 'hello' ||
    m.type === 'get-chunks' ||
    m.type === 'chunk' ||
    m.type === 'error' ||
    m.type === 'page'
  )
}

/** Builds a frame by hand: length prefix computed, type and body as given. */
export function rawFrame(type: number, ...body: (number | readonly number[] | Uint8Array)[]): Uint8Array {
  const flat: number[] = []
  for (const part of body) {
    if (typeof part === 'number') flat.push(part)
    else flat.push(...part)
  }
  const out = new Uint8Array(5 + flat.length)
  new DataView(out.buffer).setUint32(0, 1 + flat.length)
  out[4] = type
  out.set(flat, 5)
  return out
}

export const be16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff]
export const be32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]
export const be64 = (v: number | bigint): number[] => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(v))
  return [...b]
}
