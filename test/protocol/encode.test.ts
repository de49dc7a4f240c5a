import { describe, expect, it } from 'vitest'
import {
  CodecUnsupportedError,
  FrameTooLargeError,
  type HaulError,
  InvalidArgumentError,
} from '../../src/errors.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { DEFAULT_MAX_FRAME, MIN_MAX_FRAME } from '../../src/protocol/frame.ts'
import { MAX_INDEX, type TransferMessage } from '../../src/protocol/messages.ts'
import { MiB } from '../../src/types.ts'
import { bytes, SAMPLES } from './codec.util.ts'

type ErrorClass = abstract new (...args: never[]) => HaulError

const cid = bytes(32)
const IAE = InvalidArgumentError

/** Messages a buggy caller could build (bypassing the types) and the error encodeMessage raises. */
const BAD: readonly (readonly [string, unknown, ErrorClass])[] = [
  ['hello: version 2', { type: 'hello', version: 2, codecs: [], maxFrame: DEFAULT_MAX_FRAME }, IAE],
  ['hello: maxFrame too small', { type: 'hello', version: 1, codecs: [], maxFrame: 100 }, IAE],
  [
    'hello: duplicate codecs',
    { type: 'hello', version: 1, codecs: ['lz4', 'lz4'], maxFrame: DEFAULT_MAX_FRAME },
    IAE,
  ],
  [
    'hello: unknown codec',
    { type: 'hello', version: 1, codecs: ['brotli'], maxFrame: DEFAULT_MAX_FRAME },
    CodecUnsupportedError,
  ],
  [
    'hello: inherited name as codec',
    { type: 'hello', version: 1, codecs: ['toString'], maxFrame: DEFAULT_MAX_FRAME },
    CodecUnsupportedError,
  ],
  ['get-header: requestId 0', { type: 'get-header', requestId: 0, cid }, IAE],
  ['get-header: requestId 2^32', { type: 'get-header', requestId: 2 ** 32, cid }, IAE],
  ['get-header: requestId 1.5', { type: 'get-header', requestId: 1.5, cid }, IAE],
  ['get-header: cid 31 bytes', { type: 'get-header', requestId: 1, cid: bytes(31) }, IAE],
  ['get-header: cid not bytes', { type: 'get-header', requestId: 1, cid: 'abc' }, IAE],
  ['get-header: secret 15 bytes', { type: 'get-header', requestId: 1, cid, secret: bytes(15) }, IAE],
  [
    'get-chunks: secret 17 bytes',
    { type: 'get-chunks', requestId: 1, cid, ranges: ranges(1), secret: bytes(17) },
    IAE,
  ],
  [
    'get-have: secret not bytes',
    { type: 'get-have', requestId: 1, cid, start: 0, count: 1, secret: 'x' },
    IAE,
  ],
  ['header: 257 bytes', { type: 'header', requestId: 1, header: bytes(257) }, IAE],
  ['get-pages: count 0', { type: 'get-pages', requestId: 1, cid, firstPage: 0, count: 0 }, IAE],
  ['get-pages: negative page', { type: 'get-pages', requestId: 1, cid, firstPage: -1, count: 1 }, IAE],
  ['get-pages: page 2^53', { type: 'get-pages', requestId: 1, cid, firstPage: 2 ** 53, count: 1 }, IAE],
  [
    'page: 65 proof nodes',
    { type: 'page', requestId: 1, pageIndex: 0, entries: bytes(1), proof: Array(65).fill(cid) },
    IAE,
  ],
  [
    'page: short proof node',
    { type: 'page', requestId: 1, pageIndex: 0, entries: bytes(1), proof: [bytes(31)] },
    IAE,
  ],
  ['get-chunks: no ranges', { type: 'get-chunks', requestId: 1, cid, ranges: [] }, IAE],
  ['get-chunks: 65 ranges', { type: 'get-chunks', requestId: 1, cid, ranges: ranges(65) }, IAE],
  ['get-chunks: empty range', { type: 'get-chunks', requestId: 1, cid, ranges: [{ start: 3, end: 3 }] }, IAE],
  [
    'get-chunks: overlap',
    {
      type: 'get-chunks',
      requestId: 1,
      cid,
      ranges: [
        { start: 0, end: 4 },
        { start: 3, end: 5 },
      ],
    },
    IAE,
  ],
  [
    'get-chunks: end 2^53',
    { type: 'get-chunks', requestId: 1, cid, ranges: [{ start: 0, end: MAX_INDEX + 1 }] },
    IAE,
  ],
  ['chunk: unknown codec', chunk({ codec: 'brotli' }), CodecUnsupportedError],
  ["chunk: 'none' rawLength mismatch", chunk({ rawLength: 5 }), IAE],
  ['chunk: rawLength 2^32', chunk({ codec: 'lz4', rawLength: 2 ** 32 }), IAE],
  ['chunk: negative index', chunk({ index: -1 }), IAE],
  ['end: requestId 0', { type: 'end', requestId: 0 }, IAE],
  ['error: code 65536', { type: 'error', requestId: 0, code: 65536, message: '' }, IAE],
  [
    'error: message 1025 bytes',
    { type: 'error', requestId: 0, code: 1, message: 'é'.repeat(512) + 'x' },
    IAE,
  ],
  ['error: requestId -1', { type: 'error', requestId: -1, code: 1, message: '' }, IAE],
  ['unknown type', { type: 'push-chunks', requestId: 1 }, IAE],
]

function ranges(n: number): { start: number; end: number }[] {
  return Array.from({ length: n }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 }))
}

function chunk(over: Record<string, unknown>): unknown {
  return { type: 'chunk', requestId: 1, index: 0, codec: 'none', rawLength: 4, payload: bytes(4), ...over }
}

describe('encodeMessage', () => {
  it.each(BAD)('refuses %s', (_, msg, errorClass) => {
    expect(() => encodeMessage(msg as TransferMessage)).toThrow(errorClass)
  })

  it('gives one buffer for every message but chunk, and two for chunk', () => {
    for (const [, msg] of SAMPLES) expect(encodeMessage(msg)).toHaveLength(msg.type === 'chunk' ? 2 : 1)
  })

  it('refuses a chunk bigger than the peer accepts, before allocating anything', () => {
    const payload = new Uint8Array(MiB)
    const msg = { type: 'chunk', requestId: 1, index: 0, codec: 'none', rawLength: MiB, payload } as const
    expect(encodeMessage(msg, MiB + 18)).toHaveLength(2)
    expect(() => encodeMessage(msg, MiB + 17)).toThrow(FrameTooLargeError)
    const big = { ...msg, payload: new Uint8Array(DEFAULT_MAX_FRAME), rawLength: DEFAULT_MAX_FRAME }
    expect(() => encodeMessage(big)).toThrow(FrameTooLargeError)
  })

  it('refuses a page bigger than the peer accepts', () => {
    const msg = {
      type: 'page',
      requestId: 1,
      pageIndex: 0,
      entries: new Uint8Array(MIN_MAX_FRAME),
      proof: [],
    } as const
    expect(() => encodeMessage(msg, MIN_MAX_FRAME)).toThrow(FrameTooLargeError)
    expect(encodeMessage(msg, MIN_MAX_FRAME + 18)).toHaveLength(1)
  })

  it('checks its maxFrame argument', () => {
    const end = { type: 'end', requestId: 1 } as const
    for (const maxFrame of [0, 100, MIN_MAX_FRAME - 1, 2 ** 32, 1.5]) {
      expect(() => encodeMessage(end, maxFrame)).toThrow(InvalidArgumentError)
    }
    // callers that have not seen the peer's hello yet pass undefined: the default applies
    expect(encodeMessage(end, undefined)).toEqual(encodeMessage(end, DEFAULT_MAX_FRAME))
  })

  it('never mutates the message', () => {
    const msg = Object.freeze({
      type: 'get-chunks',
      requestId: 4,
      cid,
      ranges: Object.freeze([Object.freeze({ start: 1, end: 2 })]),
    }) as TransferMessage
    const copy = structuredClone(msg)
    encodeMessage(msg)
    expect(msg).toEqual(copy)
  })
})
