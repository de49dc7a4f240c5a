import { describe, expect, it } from 'vitest'
import { FrameTooLargeError, InvalidArgumentError, ProtocolViolationError } from '../../src/errors.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { MIN_MAX_FRAME } from '../../src/protocol/frame.ts'
import {
  MAX_HAVE_BITS,
  MAX_HAVE_REQUEST_BITS,
  MAX_INDEX,
  MESSAGE_TYPES,
  type TransferMessage,
} from '../../src/protocol/messages.ts'
import { be32, be64, bytes, cut, decodeAll, rawFrame, wire } from '../protocol/codec.util.ts'

const T = MESSAGE_TYPES
const cid = bytes(32, 3)
const rid = be32(9)

/** A bitmap of `count` bits with the unused high bits of the last byte cleared. */
function bitmap(count: number, seed: number): Uint8Array {
  const b = bytes(Math.ceil(count / 8), seed)
  if (count % 8 !== 0) b[b.length - 1]! &= (1 << (count % 8)) - 1
  return b
}

const SAMPLES: readonly (readonly [string, TransferMessage])[] = [
  ['get-have, one chunk', { type: 'get-have', requestId: 1, cid, start: 0, count: 1 }],
  [
    'get-have, extremes',
    { type: 'get-have', requestId: 0xffff_ffff, cid, start: MAX_INDEX, count: MAX_HAVE_REQUEST_BITS },
  ],
  [
    'have, complete',
    { type: 'have', requestId: 2, complete: true, start: 0, count: 0, bits: new Uint8Array(0) },
  ],
  [
    'have, 1 bit',
    { type: 'have', requestId: 3, complete: false, start: 7, count: 1, bits: Uint8Array.of(1) },
  ],
  [
    'have, 13 bits',
    { type: 'have', requestId: 4, complete: false, start: 2 ** 40, count: 13, bits: bitmap(13, 1) },
  ],
  [
    'have, largest run',
    {
      type: 'have',
      requestId: 5,
      complete: false,
      start: 0,
      count: MAX_HAVE_BITS,
      bits: bitmap(MAX_HAVE_BITS, 2),
    },
  ],
]

describe('get-have / have round trips', () => {
  it.each(SAMPLES)('%s: whole, split at three places, and byte by byte for small ones', (_, msg) => {
    const w = wire(msg)
    expect(decodeAll([w])).toEqual([msg])
    expect(decodeAll(cut(w, [1, 5, Math.floor(w.length / 2)]))).toEqual([msg])
    if (w.length < 200) expect(decodeAll(Array.from(w, (_, i) => w.subarray(i, i + 1)))).toEqual([msg])
  })

  it('the largest have frame fits the smallest frame limit', () => {
    const msg = SAMPLES[5]![1]
    const w = wire(msg, MIN_MAX_FRAME)
    expect(w.length).toBeLessThanOrEqual(MIN_MAX_FRAME)
    expect(decodeAll([w], new FrameDecoder({ maxFrame: MIN_MAX_FRAME }))).toEqual([msg])
  })
})

const PV = ProtocolViolationError
const MALFORMED: readonly (readonly [string, Uint8Array])[] = [
  ['get-have: count 0', rawFrame(T['get-have'], rid, cid, be64(0), be32(0))],
  [
    'get-have: count over the limit',
    rawFrame(T['get-have'], rid, cid, be64(0), be32(MAX_HAVE_REQUEST_BITS + 1)),
  ],
  ['get-have: start 2^53', rawFrame(T['get-have'], rid, cid, be64(2n ** 53n), be32(1))],
  ['get-have: requestId 0', rawFrame(T['get-have'], be32(0), cid, be64(0), be32(1))],
  ['get-have: cut short', rawFrame(T['get-have'], rid, cid, be64(0), 0, 1)],
  ['get-have: trailing byte', rawFrame(T['get-have'], rid, cid, be64(0), be32(1), 0)],
  ['have: unknown flag', rawFrame(T.have, rid, 0x02, be64(0), be32(1), 1)],
  ['have: complete with a bitmap', rawFrame(T.have, rid, 0x01, be64(0), be32(8), 0xff)],
  ['have: count 0 without complete', rawFrame(T.have, rid, 0, be64(0), be32(0))],
  ['have: count over MAX_HAVE_BITS', rawFrame(T.have, rid, 0, be64(0), be32(MAX_HAVE_BITS + 1))],
  ['have: count 2^32-1 (no allocation)', rawFrame(T.have, rid, 0, be64(0), be32(0xffff_ffff))],
  ['have: bitmap shorter than count', rawFrame(T.have, rid, 0, be64(0), be32(17), 0xff, 0xff)],
  ['have: bitmap longer than count', rawFrame(T.have, rid, 0, be64(0), be32(8), 0xff, 0)],
  ['have: bit set past the run', rawFrame(T.have, rid, 0, be64(0), be32(3), 0b1000)],
  ['have: start 2^64-1', rawFrame(T.have, rid, 0, be64(2n ** 64n - 1n), be32(1), 1)],
  ['have: requestId 0', rawFrame(T.have, be32(0), 0x01, be64(0), be32(0))],
  ['have: empty body', rawFrame(T.have)],
]

describe('malformed get-have / have', () => {
  it.each(MALFORMED)('%s', (_, frame) => {
    let err: unknown
    try {
      decodeAll([frame])
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(PV)
  })

  it('a have frame announcing more than maxFrame is refused before its body is buffered', () => {
    const decoder = new FrameDecoder({ maxFrame: MIN_MAX_FRAME })
    const prefix = new Uint8Array(5)
    new DataView(prefix.buffer).setUint32(0, MIN_MAX_FRAME + 1)
    prefix[4] = T.have
    expect(() => decoder.push(prefix)).toThrow(FrameTooLargeError)
  })
})

describe('encoder refuses what the decoder would refuse', () => {
  const base = { type: 'have', requestId: 1, complete: false, start: 0 } as const
  it.each([
    ['count 0', { ...base, count: 0, bits: new Uint8Array(0) }],
    ['bitmap of the wrong size', { ...base, count: 9, bits: new Uint8Array(1) }],
    ['bits past the run', { ...base, count: 3, bits: Uint8Array.of(0xff) }],
    ['complete with a count', { ...base, complete: true, count: 8, bits: new Uint8Array(1) }],
    [
      'count over the limit',
      { ...base, count: MAX_HAVE_BITS + 8, bits: new Uint8Array(MAX_HAVE_BITS / 8 + 1) },
    ],
  ] as const)('%s', (_, msg) => {
    expect(() => encodeMessage(msg as TransferMessage)).toThrow(InvalidArgumentError)
  })

  it('get-have count 0', () => {
    expect(() => encodeMessage({ type: 'get-have', requestId: 1, cid, start: 0, count: 0 })).toThrow(
      InvalidArgumentError,
    )
  })
})
