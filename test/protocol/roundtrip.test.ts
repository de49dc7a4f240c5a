import { describe, expect, it } from 'vitest'
import { FrameTruncatedError } from '../../src/errors.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import type { TransferMessage } from '../../src/protocol/messages.ts'
import { MiB } from '../../src/types.ts'
import {
  bytes,
  concat,
  cut,
  decodeAll,
  isRefMessage,
  prng,
  randomCuts,
  refDecode,
  refEncode,
  SAMPLES,
  wire,
} from './codec.util.ts'

describe('round trip', () => {
  it.each(SAMPLES)('%s: whole frame', (_, msg) => {
    expect(decodeAll([wire(msg)])).toEqual([msg])
  })

  it.each(SAMPLES)('%s: split in two at every byte boundary', (_, msg) => {
    const frame = wire(msg)
    for (let at = 0; at <= frame.length; at++) {
      expect(decodeAll(cut(frame, [at]))).toEqual([msg])
    }
  })

  it.each(SAMPLES)('%s: one byte at a time', (_, msg) => {
    const frame = wire(msg)
    const decoder = new FrameDecoder()
    const out = []
    for (let i = 0; i < frame.length; i++) {
      decoder.push(frame.subarray(i, i + 1))
      out.push(...decoder.frames())
      if (i < frame.length - 1) expect(out).toEqual([])
    }
    decoder.finish()
    expect(out).toEqual([msg])
    expect(decoder.buffered).toBe(0)
  })

  it('many frames in one stream, fed in random pieces, come out in order', () => {
    const all = SAMPLES.map(([, m]) => m)
    const stream = concat(all.map((m) => wire(m)))
    const rand = prng(7)
    for (let trial = 0; trial < 30; trial++) {
      const pieces = cut(stream, randomCuts(stream.length, 1 + Math.floor(rand() * 60), rand))
      expect(decodeAll(pieces)).toEqual(all)
    }
    expect(decodeAll([stream])).toEqual(all)
  })

  it('the parts encodeMessage returns can be pushed as they are', () => {
    const all = SAMPLES.map(([, m]) => m)
    expect(decodeAll(all.flatMap((m) => encodeMessage(m)))).toEqual(all)
  })

  it('breaking out of frames() leaves later frames buffered for the next call', () => {
    const decoder = new FrameDecoder()
    decoder.push(concat([wire(SAMPLES[0]![1]), wire(SAMPLES[3]![1]), wire(SAMPLES[17]![1])]))
    for (const m of decoder.frames()) {
      expect(m).toEqual(SAMPLES[0]![1])
      break
    }
    expect([...decoder.frames()]).toEqual([SAMPLES[3]![1], SAMPLES[17]![1]])
    decoder.finish()
  })

  it('accepts a Uint8ArrayList and Node Buffers, and yields plain Uint8Arrays', async () => {
    const { Uint8ArrayList } = await import('uint8arraylist')
    const msg = SAMPLES.find(([name]) => name === 'page, full proof')![1]
    const frame = wire(msg)
    const list = new Uint8ArrayList(Buffer.from(frame.subarray(0, 100)), Buffer.from(frame.subarray(100)))
    const [out] = decodeAll([list.subarray(0, 0), ...list])
    expect(out).toEqual(msg)
    if (out?.type !== 'page') throw new Error('expected a page')
    expect(Object.getPrototypeOf(out.entries)).toBe(Uint8Array.prototype)
    expect(Object.getPrototypeOf(out.proof[0])).toBe(Uint8Array.prototype)
  })
})

describe('large chunk frames', () => {
  const payload = bytes(MiB, 42)
  const msg = { type: 'chunk', requestId: 99, index: 123456, codec: 'none', rawLength: MiB, payload } as const

  /** toEqual walks a 1 MiB array element by element (slow); compare the payload natively. */
  const expectChunk = (out: unknown[]): void => {
    expect(out).toHaveLength(1)
    const m = out[0] as typeof msg
    expect({ ...m, payload: undefined }).toEqual({ ...msg, payload: undefined })
    expect(Object.getPrototypeOf(m.payload)).toBe(Uint8Array.prototype)
    expect(Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.length).equals(payload)).toBe(true)
  }

  it('encodes the payload as its own part, never copied', () => {
    const parts = encodeMessage(msg)
    expect(parts).toHaveLength(2)
    expect(parts[0]).toHaveLength(22)
    expect(parts[1]).toBe(payload)
  })

  it('yields a zero-copy view when the payload arrives in one buffer', () => {
    const [out] = decodeAll(encodeMessage(msg))
    if (out?.type !== 'chunk') throw new Error('expected a chunk')
    expect(out.payload.buffer).toBe(payload.buffer)
    expect(out.payload.byteOffset).toBe(0)
    expect(out.payload.length).toBe(MiB)
  })

  it('copies once, correctly, when the payload is split across reads', () => {
    const frame = wire(msg)
    const pieces = cut(
      frame,
      Array.from({ length: Math.floor(frame.length / 65535) }, (_, i) => (i + 1) * 65535),
    )
    const [out] = decodeAll(pieces)
    expectChunk([out])
    if (out?.type !== 'chunk') throw new Error('expected a chunk')
    expect(out.payload.buffer).not.toBe(frame.buffer)
  })

  it('survives random splits', () => {
    const frame = wire(msg)
    const rand = prng(3)
    for (let trial = 0; trial < 12; trial++) {
      const pieces = cut(frame, randomCuts(frame.length, 1 + Math.floor(rand() * 40), rand))
      expectChunk(decodeAll(pieces))
    }
    // the header itself split at every byte, payload whole
    for (let at = 1; at < 22; at++) expectChunk(decodeAll(cut(frame, [at, 22])))
  })

  it('keeps buffering bounded to what was pushed and releases it once yielded', () => {
    const frame = wire(msg)
    const decoder = new FrameDecoder()
    decoder.push(frame.subarray(0, 1000))
    expect([...decoder.frames()]).toEqual([])
    expect(decoder.buffered).toBe(1000)
    decoder.push(frame.subarray(1000))
    expect([...decoder.frames()]).toHaveLength(1)
    expect(decoder.buffered).toBe(0)
  })
})

describe('cross-check against the naive reference codec', () => {
  const cases = SAMPLES.filter(([, m]) => isRefMessage(m))

  it('covers the types it claims', () => {
    expect(new Set(cases.map(([, m]) => m.type))).toEqual(
      new Set(['hello', 'page', 'get-chunks', 'chunk', 'error']),
    )
  })

  it.each(cases)('%s: same bytes, and each side decodes the other', (_, msg) => {
    if (!isRefMessage(msg)) throw new Error('unreachable')
    const ours = wire(msg)
    const theirs = refEncode(msg)
    expect(ours).toEqual(theirs)
    expect(refDecode(ours)).toEqual(msg)
    expect(decodeAll([theirs])).toEqual([msg])
  })
})

describe('golden bytes (the wire layout must not drift)', () => {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

  it('hello', () => {
    const b = wire({ type: 'hello', version: 1, codecs: ['none', 'lz4', 'zstd'], maxFrame: 8 * MiB + 64 })
    expect(hex(b)).toBe('0000000b' + '01' + '0001' + '00800040' + '03' + '000102')
  })

  it('end and cancel', () => {
    expect(hex(wire({ type: 'end', requestId: 7 }))).toBe('00000005' + '20' + '00000007')
    expect(hex(wire({ type: 'cancel', requestId: 258 }))).toBe('00000005' + '21' + '00000102')
  })

  it('chunk', () => {
    const b = wire({
      type: 'chunk',
      requestId: 1,
      index: 2 ** 32 + 5,
      codec: 'zstd',
      rawLength: 10,
      payload: new TextEncoder().encode('abc'),
    })
    expect(hex(b)).toBe('00000015' + '15' + '00000001' + '0000000100000005' + '02' + '0000000a' + '616263')
  })

  it('get-pages', () => {
    const cid = new Uint8Array(32).fill(0xaa)
    const b = wire({ type: 'get-pages', requestId: 2, cid, firstPage: 3, count: 4 })
    expect(hex(b)).toBe('00000031' + '12' + '00000002' + 'aa'.repeat(32) + '0000000000000003' + '00000004')
  })

  it('error', () => {
    const b = wire({ type: 'error', requestId: 0, code: 20, message: 'é' })
    expect(hex(b)).toBe('0000000b' + '22' + '00000000' + '0014' + '0002' + 'c3a9')
  })
})

describe('chunk payloads gathered into caller buffers (allocPayload)', () => {
  const chunks = SAMPLES.filter(([, m]) => m.type === 'chunk')

  it.each(chunks)('%s: split at many boundaries, the payload lands in the supplied buffer', (_, msg) => {
    const frame = wire(msg)
    for (let at = 0; at <= frame.length; at += 7) {
      const given: Uint8Array[] = []
      const decoder = new FrameDecoder({
        allocPayload: (n) => {
          const b = new Uint8Array(n).fill(0xee)
          given.push(b)
          return b
        },
      })
      const [got] = decodeAll(cut(frame, [at, Math.min(frame.length, at + 3)]), decoder)
      expect(got).toEqual(msg)
      expect(given).toHaveLength(1)
      expect((got as { payload: Uint8Array }).payload).toBe(given[0])
    }
  })

  it('a 1 MiB payload arriving in 64 KiB pieces is gathered intact', () => {
    const payload = bytes(MiB)
    const frame = wire({ type: 'chunk', requestId: 1, index: 5, codec: 'none', rawLength: MiB, payload })
    const pieces = []
    for (let i = 0; i < frame.length; i += 65_536) pieces.push(frame.subarray(i, i + 65_536))
    const out = new Uint8Array(MiB)
    const [got] = decodeAll(pieces, new FrameDecoder({ allocPayload: () => out }))
    expect((got as { payload: Uint8Array }).payload).toBe(out)
    expect(Buffer.compare(out, payload)).toBe(0)
  })

  it('a stream that ends inside a gathered payload is FrameTruncatedError', () => {
    const frame = wire({
      type: 'chunk',
      requestId: 1,
      index: 0,
      codec: 'none',
      rawLength: 5000,
      payload: bytes(5000),
    })
    const decoder = new FrameDecoder({ allocPayload: (n) => new Uint8Array(n) })
    decoder.push(frame.subarray(0, 3000))
    expect([...decoder.frames()]).toEqual([])
    expect(() => decoder.finish()).toThrow(FrameTruncatedError)
  })

  it('an allocator that returns the wrong length is an error, not a short payload', () => {
    const frame = wire({
      type: 'chunk',
      requestId: 1,
      index: 0,
      codec: 'none',
      rawLength: 10,
      payload: bytes(10),
    })
    const decoder = new FrameDecoder({ allocPayload: (n) => new Uint8Array(n + 1) })
    expect(() => decodeAll([frame], decoder)).toThrow(/allocPayload returned 11 bytes/)
  })
})

describe('allocPayload: payload bytes are copied as they arrive', () => {
  it('pieces can be reused once frames() has run: the gathered payload keeps no reference to them', () => {
    const payload = bytes(200_000)
    const frame = wire({ type: 'chunk', requestId: 9, index: 1, codec: 'none', rawLength: 200_000, payload })
    const decoder = new FrameDecoder({ allocPayload: (n) => new Uint8Array(n) })
    const got: TransferMessage[] = []
    for (let i = 0; i < frame.length; i += 65_536) {
      // A copy per push, overwritten right after, as a recycled network buffer would be.
      const piece = frame.slice(i, i + 65_536)
      decoder.push(piece)
      got.push(...decoder.frames())
      piece.fill(0)
    }
    decoder.finish()
    expect(got).toHaveLength(1)
    expect(Buffer.compare((got[0] as { payload: Uint8Array }).payload, payload)).toBe(0)
  })

  it('buffered counts the bytes of a half-gathered chunk, and the next frame follows it', () => {
    const a = wire({
      type: 'chunk',
      requestId: 1,
      index: 0,
      codec: 'none',
      rawLength: 1000,
      payload: bytes(1000),
    })
    const b = wire({ type: 'cancel', requestId: 1 })
    const decoder = new FrameDecoder({ allocPayload: (n) => new Uint8Array(n) })
    decoder.push(a.subarray(0, 600))
    expect([...decoder.frames()]).toEqual([])
    expect(decoder.buffered).toBe(600)
    decoder.push(Buffer.concat([a.subarray(600), b]))
    expect([...decoder.frames()].map((m) => m.type)).toEqual(['chunk', 'cancel'])
    expect(decoder.buffered).toBe(0)
  })
})
