import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { ProtocolViolationError } from '../../../src/errors.ts'
import { YamuxFrameGuard } from '../../../src/net/tuning/yamux-guard.ts'

const DATA = 0
const WINDOW_UPDATE = 1
const PING = 2

function header(type: number, length: number, streamId = 1, version = 0): Uint8Array {
  const h = new Uint8Array(12)
  const v = new DataView(h.buffer)
  h[0] = version
  h[1] = type
  v.setUint16(2, 0)
  v.setUint32(4, streamId)
  v.setUint32(8, length)
  return h
}

function frame(type: number, length: number): Uint8Array[] {
  return type === DATA ? [header(type, length), new Uint8Array(length).fill(0xab)] : [header(type, length)]
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

describe('YamuxFrameGuard', () => {
  const MAX = 1024

  it('accepts a stream of valid frames however it is split', () => {
    // Window updates and pings carry a length that is not followed by bytes.
    const bytes = concat([
      ...frame(DATA, 0),
      ...frame(WINDOW_UPDATE, 0xffffffff),
      ...frame(DATA, MAX),
      ...frame(PING, 7),
      ...frame(DATA, 13),
      ...frame(DATA, MAX),
    ])
    for (const step of [1, 5, 11, 12, 13, 700, bytes.byteLength]) {
      const g = new YamuxFrameGuard(MAX)
      for (let i = 0; i < bytes.byteLength; i += step) {
        expect(g.push(bytes.subarray(i, i + step))).toBeUndefined()
      }
    }
  })

  it('flags an oversized data frame from its header alone, even split byte by byte', () => {
    const g = new YamuxFrameGuard(MAX)
    expect(g.push(concat(frame(DATA, 10)))).toBeUndefined()
    const bad = header(DATA, MAX + 1)
    let violation: ProtocolViolationError | undefined
    for (let i = 0; i < bad.byteLength; i++) {
      violation = g.push(bad.subarray(i, i + 1))
      if (i < bad.byteLength - 1) expect(violation).toBeUndefined()
    }
    expect(violation).toBeInstanceOf(ProtocolViolationError)
    expect(violation?.message).toContain(`${MAX + 1}-byte`)
    // Sticky: later input does not clear it.
    expect(g.push(concat(frame(DATA, 1)))).toBe(violation)
  })

  it('reads the 32-bit length without sign overflow (a 4 GiB claim is caught)', () => {
    const g = new YamuxFrameGuard(16 * 1024 * 1024)
    expect(g.push(header(DATA, 0xffffffff))).toBeInstanceOf(ProtocolViolationError)
  })

  it('flags an unknown version', () => {
    const g = new YamuxFrameGuard(MAX)
    expect(g.push(header(WINDOW_UPDATE, 0, 1, 1))?.message).toMatch(/version/)
  })

  it('accepts Uint8ArrayList input and finds a bad header after a payload boundary', () => {
    const g = new YamuxFrameGuard(MAX)
    const list = new Uint8ArrayList(...frame(DATA, 100), header(DATA, MAX * 2))
    expect(g.push(list)).toBeInstanceOf(ProtocolViolationError)
  })
})
