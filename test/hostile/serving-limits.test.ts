/**
 * The decoder's limit table (src/protocol/frame.ts): a serving-side decoder refuses a request
 * announced above its type's limit, or a reply type, as soon as the type byte is in, and keeps
 * only its own bytes of an unfinished frame; a receiving-side decoder still takes chunk and page
 * frames up to maxFrame.
 */
import { describe, expect, it } from 'vitest'
import { FrameTooLargeError, ProtocolViolationError } from '../../src/errors.ts'
import { COMPACT_BYTES, FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import {
  DEFAULT_MAX_FRAME,
  frameLimit,
  HELLO_LIMIT,
  MIN_MAX_FRAME,
  SERVING_FRAME_LIMITS,
} from '../../src/protocol/frame.ts'
import {
  MAX_ERROR_MESSAGE_BYTES,
  MAX_RANGES,
  MESSAGE_TYPES,
  type MessageType,
  type TransferMessage,
} from '../../src/protocol/messages.ts'

const cid = new Uint8Array(32).fill(3)
const secret = new Uint8Array(16).fill(4)
const wire = (m: TransferMessage): Uint8Array => Buffer.concat(encodeMessage(m))
const head = (len: number, type: MessageType): Uint8Array => {
  const h = new Uint8Array(5)
  new DataView(h.buffer).setUint32(0, len)
  h[4] = MESSAGE_TYPES[type]
  return h
}

/** The largest frame of each request type a correct receiver can build (requests with their secret). */
const LARGEST: Array<[MessageType, TransferMessage]> = [
  ['hello', { type: 'hello', version: 1, codecs: ['none', 'lz4', 'zstd'], maxFrame: DEFAULT_MAX_FRAME }],
  ['get-header', { type: 'get-header', requestId: 1, cid, secret }],
  ['get-pages', { type: 'get-pages', requestId: 1, cid, firstPage: 2 ** 40, count: 16, secret }],
  [
    'get-chunks',
    {
      type: 'get-chunks',
      requestId: 1,
      cid,
      ranges: Array.from({ length: MAX_RANGES }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 })),
      secret,
    },
  ],
  ['get-have', { type: 'get-have', requestId: 1, cid, start: 0, count: 2 ** 24, secret }],
  ['cancel', { type: 'cancel', requestId: 1 }],
  ['error', { type: 'error', requestId: 0, code: 3, message: 'x'.repeat(MAX_ERROR_MESSAGE_BYTES) }],
]

describe('serving side: per-type limits', () => {
  it.each(LARGEST)('the largest %s a receiver sends is accepted', (type, msg) => {
    const bytes = wire(msg)
    // At the limit exactly: each limit is the largest frame a correct receiver builds.
    if (type !== 'hello') expect(bytes.length - 4).toBe(SERVING_FRAME_LIMITS[type])
    expect(bytes.length - 4).toBeLessThanOrEqual(SERVING_FRAME_LIMITS[type])
    const d = new FrameDecoder({ side: 'serving' })
    d.push(bytes)
    expect([...d.frames()]).toHaveLength(1)
  })

  it.each(LARGEST)('a %s announced one byte over its limit is refused at its type byte', (type) => {
    const limit = SERVING_FRAME_LIMITS[type]
    const d = new FrameDecoder({ side: 'serving' })
    d.push(head(limit + 1, type).subarray(0, 4))
    expect([...d.frames()]).toEqual([])
    expect(() => d.push(head(limit + 1, type).subarray(4))).toThrow(FrameTooLargeError)
    expect(d.buffered).toBe(5)
    // nothing more is taken in
    expect(() => d.push(new Uint8Array(1024))).toThrow(FrameTooLargeError)
    expect(d.buffered).toBe(5)
  })

  it('every request fits ~1 KiB; hello has room for a longer later version', () => {
    for (const [type] of LARGEST) expect(SERVING_FRAME_LIMITS[type]).toBeLessThanOrEqual(HELLO_LIMIT + 64)
    expect(SERVING_FRAME_LIMITS['get-chunks']).toBe(1078)
  })

  it.each(['header', 'page', 'chunk', 'have', 'end'] as const)(
    'a %s frame is refused at its type byte, whatever its length',
    (type) => {
      const d = new FrameDecoder({ side: 'serving' })
      expect(() => d.push(head(5, type))).toThrow(ProtocolViolationError)
      expect(d.buffered).toBe(5)
    },
  )

  it('the frame announced at the frame limit (the half-frame attack) is refused at 5 bytes', () => {
    const d = new FrameDecoder({ side: 'serving', maxFrame: DEFAULT_MAX_FRAME })
    expect(() => d.push(head(DEFAULT_MAX_FRAME - 8, 'get-chunks'))).toThrow(FrameTooLargeError)
  })

  it('an unfinished request keeps only its own bytes, not the network buffer it came in', () => {
    const d = new FrameDecoder({ side: 'serving' })
    const cancels = Buffer.concat(
      Array.from({ length: 6000 }, (_, i) => wire({ type: 'cancel', requestId: i + 1 })),
    )
    const partial = wire({ type: 'get-header', requestId: 9, cid }).subarray(0, 20)
    const network = new Uint8Array(cancels.length + partial.length)
    network.set(cancels)
    network.set(partial, cancels.length)
    d.push(network)
    expect([...d.frames()]).toHaveLength(6000)
    expect(d.buffered).toBe(20)
    // What is left is a copy of its own, so the ~54 KB buffer the network handed over is not
    // pinned: overwriting that buffer does not reach the decoder.
    expect(network.byteLength).toBeGreaterThan(COMPACT_BYTES)
    network.fill(0)
    d.push(wire({ type: 'get-header', requestId: 9, cid }).subarray(20))
    expect([...d.frames()]).toEqual([{ type: 'get-header', requestId: 9, cid }])
  })
})

describe('receiving side', () => {
  it('chunk and page frames go up to maxFrame, every other type up to MIN_MAX_FRAME', () => {
    for (const type of Object.keys(MESSAGE_TYPES) as MessageType[]) {
      const want = type === 'chunk' || type === 'page' ? DEFAULT_MAX_FRAME : MIN_MAX_FRAME
      expect(frameLimit('receiving', type, DEFAULT_MAX_FRAME)).toBe(want)
    }
    const d = new FrameDecoder()
    d.push(head(DEFAULT_MAX_FRAME, 'chunk'))
    expect([...d.frames()]).toEqual([])
    expect(() => new FrameDecoder().push(head(MIN_MAX_FRAME + 1, 'end'))).toThrow(FrameTooLargeError)
  })
})
