import { describe, expect, it } from 'vitest'
import {
  CodecUnsupportedError,
  ConfigInvalidError,
  FrameTooLargeError,
  FrameTruncatedError,
  type HaulError,
  InvalidArgumentError,
  ProtocolViolationError,
  UnknownMessageTypeError,
  UnsupportedVersionError,
} from '../../src/errors.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { DEFAULT_MAX_FRAME, MIN_MAX_FRAME } from '../../src/protocol/frame.ts'
import { MAX_INDEX, MESSAGE_TYPES, RESERVED_MESSAGE_TYPES } from '../../src/protocol/messages.ts'
import { be16, be32, be64, bytes, decodeAll, rawFrame, wire } from './codec.util.ts'

type ErrorClass = abstract new (...args: never[]) => HaulError

const T = MESSAGE_TYPES
const cid = [...bytes(32, 9)]
const hash = [...bytes(32, 8)]
const rid = be32(1)
const PV = ProtocolViolationError

/** Each row: a frame whose body breaks its layout, and the error it must raise. */
const MALFORMED: readonly (readonly [string, Uint8Array, ErrorClass])[] = [
  // hello
  ['hello: empty body', rawFrame(T.hello), PV],
  ['hello: version cut short', rawFrame(T.hello, 0), PV],
  ['hello: version 2', rawFrame(T.hello, be16(2), be32(DEFAULT_MAX_FRAME), 0), UnsupportedVersionError],
  ['hello: version 0, nothing else', rawFrame(T.hello, be16(0)), UnsupportedVersionError],
  ['hello: maxFrame cut short', rawFrame(T.hello, be16(1), 0, 1), PV],
  ['hello: maxFrame below the minimum', rawFrame(T.hello, be16(1), be32(MIN_MAX_FRAME - 1), 0), PV],
  ['hello: codec count beyond the body', rawFrame(T.hello, be16(1), be32(DEFAULT_MAX_FRAME), 3, 0, 1), PV],
  ['hello: duplicate codec', rawFrame(T.hello, be16(1), be32(DEFAULT_MAX_FRAME), 2, 1, 1), PV],
  ['hello: trailing byte', rawFrame(T.hello, be16(1), be32(DEFAULT_MAX_FRAME), 0, 0), PV],
  // get-header
  ['get-header: cid of 31 bytes', rawFrame(T['get-header'], rid, cid.slice(1)), PV],
  ['get-header: trailing byte', rawFrame(T['get-header'], rid, cid, 0), PV],
  ['get-header: requestId 0', rawFrame(T['get-header'], be32(0), cid), PV],
  ['get-header: secret of 15 bytes', rawFrame(T['get-header'], rid, cid, new Uint8Array(15)), PV],
  ['get-header: secret and a byte more', rawFrame(T['get-header'], rid, cid, new Uint8Array(17)), PV],
  // header
  ['header: 257 bytes', rawFrame(T.header, rid, be16(257), new Uint8Array(257)), PV],
  ['header: length beyond the body', rawFrame(T.header, rid, be16(10), new Uint8Array(9)), PV],
  ['header: length cut short', rawFrame(T.header, rid, 0), PV],
  // get-pages
  ['get-pages: count 0', rawFrame(T['get-pages'], rid, cid, be64(0), be32(0)), PV],
  ['get-pages: firstPage 2^53', rawFrame(T['get-pages'], rid, cid, be64(2n ** 53n), be32(1)), PV],
  ['get-pages: firstPage 2^64-1', rawFrame(T['get-pages'], rid, cid, be64(2n ** 64n - 1n), be32(1)), PV],
  ['get-pages: count cut short', rawFrame(T['get-pages'], rid, cid, be64(0), 0, 0, 1), PV],
  ['get-pages: secret of 1 byte', rawFrame(T['get-pages'], rid, cid, be64(0), be32(1), 9), PV],
  // page
  ['page: 65 proof nodes', rawFrame(T.page, rid, be64(0), 65, ...Array(65).fill(hash), be32(0)), PV],
  ['page: proof count beyond the body', rawFrame(T.page, rid, be64(0), 2, hash, be32(0)), PV],
  ['page: entries length beyond the body', rawFrame(T.page, rid, be64(0), 0, be32(0xffff_ffff), 1, 2, 3), PV],
  ['page: trailing bytes', rawFrame(T.page, rid, be64(0), 1, hash, be32(1), 7, 7), PV],
  ['page: requestId 0', rawFrame(T.page, be32(0), be64(0), 0, be32(0)), PV],
  // get-chunks
  ['get-chunks: no ranges', rawFrame(T['get-chunks'], rid, cid, 0), PV],
  ['get-chunks: 65 ranges', rawFrame(T['get-chunks'], rid, cid, 65, ...rangeList(65)), PV],
  ['get-chunks: range count beyond the body', rawFrame(T['get-chunks'], rid, cid, 3, ...rangeList(2)), PV],
  ['get-chunks: empty range', rawFrame(T['get-chunks'], rid, cid, 1, be64(5), be64(5)), PV],
  ['get-chunks: inverted range', rawFrame(T['get-chunks'], rid, cid, 1, be64(6), be64(5)), PV],
  [
    'get-chunks: overlapping ranges',
    rawFrame(T['get-chunks'], rid, cid, 2, be64(0), be64(5), be64(4), be64(8)),
    PV,
  ],
  [
    'get-chunks: ranges out of order',
    rawFrame(T['get-chunks'], rid, cid, 2, be64(6), be64(8), be64(0), be64(2)),
    PV,
  ],
  ['get-chunks: end past 2^53-1', rawFrame(T['get-chunks'], rid, cid, 1, be64(0), be64(MAX_INDEX + 1)), PV],
  ['get-chunks: trailing byte', rawFrame(T['get-chunks'], rid, cid, 1, be64(0), be64(1), 0), PV],
  [
    'get-chunks: secret cut short',
    rawFrame(T['get-chunks'], rid, cid, 1, be64(0), be64(1), new Uint8Array(15)),
    PV,
  ],
  // chunk
  ['chunk: body shorter than its header', rawFrame(T.chunk, rid, be64(0), 0, 0, 0, 0), PV],
  ['chunk: unknown codec', rawFrame(T.chunk, rid, be64(0), 3, be32(1), 0), CodecUnsupportedError],
  ['chunk: codec 0xff', rawFrame(T.chunk, rid, be64(0), 0xff, be32(1), 0), CodecUnsupportedError],
  ["chunk: 'none' with rawLength ≠ payload", rawFrame(T.chunk, rid, be64(0), 0, be32(2), 0), PV],
  ['chunk: index 2^53', rawFrame(T.chunk, rid, be64(2n ** 53n), 0, be32(0)), PV],
  ['chunk: requestId 0', rawFrame(T.chunk, be32(0), be64(0), 0, be32(0)), PV],
  // end, cancel
  ['end: trailing byte', rawFrame(T.end, rid, 0), PV],
  ['end: cut short', rawFrame(T.end, 0, 0, 1), PV],
  ['cancel: requestId 0', rawFrame(T.cancel, be32(0)), PV],
  ['cancel: empty', rawFrame(T.cancel), PV],
  // error
  [
    'error: message over 1 KiB',
    rawFrame(T.error, rid, be16(1), be16(1025), new Uint8Array(1025).fill(65)),
    PV,
  ],
  ['error: message beyond the body', rawFrame(T.error, rid, be16(1), be16(5), 65, 66), PV],
  ['error: invalid UTF-8', rawFrame(T.error, rid, be16(1), be16(2), 0xc3, 0x28), PV],
  ['error: trailing byte', rawFrame(T.error, rid, be16(1), be16(0), 0), PV],
  // framing
  ['zero length prefix', new Uint8Array(4), PV],
]

function rangeList(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => [...be64(2 * i), ...be64(2 * i + 1)])
}

function decodeError(pieces: Uint8Array[], decoder = new FrameDecoder()): unknown {
  try {
    decodeAll(pieces, decoder)
  } catch (err) {
    return err
  }
  throw new Error('expected the decoder to throw')
}

describe('malformed bodies', () => {
  it.each(MALFORMED)('%s', (_, frame, errorClass) => {
    const err = decodeError([frame])
    expect(err).toBeInstanceOf(errorClass)
    // and the same when the frame dribbles in byte by byte
    const pieces = Array.from(frame, (_, i) => frame.subarray(i, i + 1))
    expect(decodeError(pieces)).toBeInstanceOf(errorClass)
  })

  it('a frame after a good one fails without losing the good one', () => {
    const decoder = new FrameDecoder()
    decoder.push(wire({ type: 'end', requestId: 3 }))
    decoder.push(rawFrame(T.end, rid, 0))
    const it = decoder.frames()
    expect(it.next().value).toEqual({ type: 'end', requestId: 3 })
    expect(() => it.next()).toThrow(ProtocolViolationError)
  })

  it('hello drops codec ids it does not know (a newer peer may offer more)', () => {
    const frame = rawFrame(T.hello, be16(1), be32(DEFAULT_MAX_FRAME), 4, 7, 2, 200, 0)
    expect(decodeAll([frame])).toEqual([
      { type: 'hello', version: 1, codecs: ['zstd', 'none'], maxFrame: DEFAULT_MAX_FRAME },
    ])
  })

  it('a version mismatch is reported even when the rest of hello has a layout we cannot parse', () => {
    const err = decodeError([rawFrame(T.hello, be16(2), 0xde, 0xad)])
    expect(err).toBeInstanceOf(UnsupportedVersionError)
    expect((err as Error).message).toMatch(/version 2/)
  })

  it('error frames keep unknown codes as numbers', () => {
    expect(decodeAll([rawFrame(T.error, be32(0), be16(999), be16(1), 65)])).toEqual([
      { type: 'error', requestId: 0, code: 999, message: 'A' },
    ])
  })
})

describe('unknown message types', () => {
  const known = new Set<number>(Object.values(MESSAGE_TYPES))
  const reserved = RESERVED_MESSAGE_TYPES.flatMap(([a, b]) =>
    Array.from({ length: b - a + 1 }, (_, i) => a + i),
  )

  it('reserved numbers are not assigned', () => {
    for (const n of reserved) expect(known.has(n)).toBe(false)
  })

  it.each([0x00, 0x02, 0x0f, 0x16, 0x1f, 0x23, 0x30, 0x99, 0xf0, 0xff])('type 0x%s is refused', (n) => {
    expect(decodeError([rawFrame(n, rid)])).toBeInstanceOf(UnknownMessageTypeError)
  })

  it('every number outside the table is refused', () => {
    for (let n = 0; n < 256; n++) {
      if (known.has(n)) continue
      expect(decodeError([rawFrame(n)])).toBeInstanceOf(UnknownMessageTypeError)
    }
  })
})

describe('frame length limits', () => {
  const prefix = (len: number): Uint8Array => new Uint8Array(be32(len))

  it('refuses an oversize length prefix before any body arrives', () => {
    const decoder = new FrameDecoder()
    expect(() => decoder.push(prefix(DEFAULT_MAX_FRAME + 1))).toThrow(FrameTooLargeError)
    expect(decoder.buffered).toBe(4)
    // the peer keeps sending: nothing more is buffered, the same error every time
    const body = new Uint8Array(64 * 1024)
    for (let i = 0; i < 10; i++) expect(() => decoder.push(body)).toThrow(FrameTooLargeError)
    expect(decoder.buffered).toBe(4)
    expect(() => [...decoder.frames()]).toThrow(FrameTooLargeError)
    expect(() => decoder.finish()).toThrow(FrameTooLargeError)
  })

  it('refuses a 4 GiB prefix that arrives one byte at a time', () => {
    const decoder = new FrameDecoder()
    const p = prefix(0xffff_ffff)
    for (let i = 0; i < 3; i++) decoder.push(p.subarray(i, i + 1))
    expect([...decoder.frames()]).toEqual([])
    expect(() => decoder.push(p.subarray(3))).toThrow(FrameTooLargeError)
    expect(decoder.buffered).toBe(4)
  })

  it('refuses a later frame in the same push before waiting for its body', () => {
    const decoder = new FrameDecoder()
    decoder.push(
      new Uint8Array([...wire({ type: 'end', requestId: 1 }), ...prefix(DEFAULT_MAX_FRAME + 1), 0x15]),
    )
    const it = decoder.frames()
    expect(it.next().value).toEqual({ type: 'end', requestId: 1 })
    expect(() => it.next()).toThrow(FrameTooLargeError)
    expect(decoder.buffered).toBe(5)
  })

  it('accepts a frame of exactly maxFrame and refuses one byte more', () => {
    const maxFrame = MIN_MAX_FRAME
    const payload = new Uint8Array(maxFrame - 18)
    const fits = {
      type: 'chunk',
      requestId: 1,
      index: 0,
      codec: 'none',
      rawLength: payload.length,
      payload,
    } as const
    expect(decodeAll([wire(fits, maxFrame)], new FrameDecoder({ maxFrame }))).toHaveLength(1)
    const frame = wire(fits, maxFrame + 1)
    const bigger = new Uint8Array(frame.length + 1)
    bigger.set(frame)
    new DataView(bigger.buffer).setUint32(0, maxFrame + 1)
    expect(decodeError([bigger], new FrameDecoder({ maxFrame }))).toBeInstanceOf(FrameTooLargeError)
  })

  it('decoder options are checked and never mutated', () => {
    for (const maxFrame of [0, 10, MIN_MAX_FRAME - 1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => new FrameDecoder({ maxFrame })).toThrow(ConfigInvalidError)
    }
    const opts = Object.freeze({})
    expect(() => new FrameDecoder(opts)).not.toThrow()
    expect(() => new FrameDecoder({ maxFrame: undefined })).not.toThrow()
  })
})

describe('truncated streams', () => {
  const frame = wire({ type: 'get-header', requestId: 5, cid: bytes(32) })

  it.each([1, 3, 4, 5, 20, frame.length - 1])('finish() after %i bytes of a frame throws', (n) => {
    const decoder = new FrameDecoder()
    decoder.push(frame.subarray(0, n))
    expect([...decoder.frames()]).toEqual([])
    expect(() => decoder.finish()).toThrow(FrameTruncatedError)
  })

  it('finish() after whole frames is quiet', () => {
    const decoder = new FrameDecoder()
    decoder.push(frame)
    decoder.push(frame)
    expect([...decoder.frames()]).toHaveLength(2)
    expect(() => decoder.finish()).not.toThrow()
  })

  it('finish() with a whole frame not yet drained is a caller bug, not a truncation', () => {
    const decoder = new FrameDecoder()
    decoder.push(frame)
    expect(() => decoder.finish()).toThrow(InvalidArgumentError)
    expect([...decoder.frames()]).toHaveLength(1)
    decoder.finish()
  })
})
