import { describe, expect, it } from 'vitest'
import {
  type ErrorCode,
  errorClassOf,
  errorFromWire,
  FrameTooLargeError,
  FrameTruncatedError,
  PeerFailedError,
  ProtocolViolationError,
  TooManyRequestsError,
  UnknownMessageTypeError,
  UnsupportedVersionError,
  WIRE_CODES,
} from '../../src/errors.ts'
import { errorMessage } from '../../src/protocol/encoder.ts'
import { MAX_ERROR_MESSAGE_BYTES, PROTOCOL_ID, PROTOCOL_VERSION } from '../../src/protocol/messages.ts'
import { decodeAll, wire } from './codec.util.ts'

function throughWire(requestId: number, err: unknown) {
  const [msg] = decodeAll([wire(errorMessage(requestId, err))])
  if (msg?.type !== 'error') throw new Error('expected an error frame')
  return msg
}

describe('error frames', () => {
  // Their messages name the sender's files, errno text, its storage: the peer gets a fixed sentence.
  const ABOUT_THE_SENDER: ErrorCode[] = [
    // One sentence for every reason, so a request cannot tell unknown from unpublished or guarded.
    'CONTENT_NOT_FOUND',
    'CONTENT_CHANGED',
    'CONTENT_PREPARING',
    'SOURCE_INVALID',
    'PERMISSION_DENIED',
    'NO_SPACE',
    'FILE_TOO_LARGE',
    'TOO_MANY_OPEN_FILES',
    'DESTINATION_INVALID',
    'DESTINATION_BUSY',
    'DESTINATION_EXISTS',
    'CONFIG_INVALID',
    'INTERNAL',
  ]
  // What a peer may report about the exchange: the same class on both sides.
  const THE_PEERS: ErrorCode[] = [
    'TIMEOUT',
    'UNSUPPORTED_VERSION',
    'CONTENT_NOT_FOUND',
    'CONTENT_CHANGED',
    'CONTENT_PREPARING',
    'CHUNK_UNAVAILABLE',
    'FRAME_TOO_LARGE',
    'FRAME_TRUNCATED',
    'UNKNOWN_MESSAGE_TYPE',
    'PROTOCOL_VIOLATION',
    'CODEC_UNSUPPORTED',
    'DECOMPRESSION_FAILED',
    'STREAM_CLOSED',
    'TOO_MANY_REQUESTS',
    'CIRCUIT_LIMIT',
  ]
  it.each(Object.entries(WIRE_CODES) as [ErrorCode, number][])(
    "%s travels with its code; the receiver keeps it only if it is a peer's to send",
    (code, wireCode) => {
      const local = new (errorClassOf(code))('something went wrong')
      expect(local.code).toBe(code)
      const msg = throughWire(17, local)
      expect(msg).toMatchObject({ type: 'error', requestId: 17, code: wireCode })
      const remote = errorFromWire(msg.code, msg.message)
      if (THE_PEERS.includes(code)) {
        expect(remote.constructor).toBe(local.constructor)
        expect(remote.message).toMatch(/^remote peer: /)
      } else {
        // About this machine or its caller here (ABORTED, NO_SPACE, TICKET_INVALID…): the peer's failure.
        expect(remote).toBeInstanceOf(PeerFailedError)
        expect((remote as PeerFailedError).remoteWireCode).toBe(wireCode)
        expect(remote.message).toMatch(new RegExp(`^remote peer \\(${code}\\): `))
      }
      if (!ABOUT_THE_SENDER.includes(code)) expect(remote.message).toContain('something went wrong')
    },
  )

  it.each(ABOUT_THE_SENDER)('%s keeps its code; its message, naming local files, stays home', (code) => {
    const local = new (errorClassOf(code))('/home/alice/published/report.pdf changed (EACCES)')
    const msg = throughWire(4, local)
    expect(msg.code).toBe(WIRE_CODES[code])
    expect(msg.message).not.toMatch(/alice|report|EACCES/)
    expect(msg.message.length).toBeGreaterThan(0)
  })

  // The codes the protocol layer itself raises, pinned: renumbering one breaks every older peer.
  it.each([
    [new FrameTooLargeError('x'), 20],
    [new FrameTruncatedError('x'), 21],
    [new UnknownMessageTypeError('x'), 22],
    [new ProtocolViolationError('x'), 23],
    [new UnsupportedVersionError('x'), 11],
    [new TooManyRequestsError('x'), 32],
  ] as const)('%s travels as code %i', (err, code) => {
    expect(errorMessage(3, err)).toEqual({ type: 'error', requestId: 3, code, message: 'x' })
  })

  it('connection-level errors use request id 0', () => {
    expect(throughWire(0, new ProtocolViolationError('bad frame'))).toEqual({
      type: 'error',
      requestId: 0,
      code: WIRE_CODES.PROTOCOL_VIOLATION,
      message: 'bad frame',
    })
  })

  it('foreign errors travel as INTERNAL without leaking message or stack; the receiver reports PEER_FAILED', () => {
    const secret = new TypeError('cannot read /home/alice/.ssh/id_ed25519')
    for (const err of [secret, 'a thrown string', undefined, { code: 'PROTOCOL_VIOLATION' }]) {
      const msg = throughWire(9, err)
      expect(msg.code).toBe(WIRE_CODES.INTERNAL)
      expect(msg.message).toBe('internal error')
      expect(errorFromWire(msg.code, msg.message)).toBeInstanceOf(PeerFailedError)
    }
  })

  it('does not send the cause or stack of a HaulError', () => {
    const err = new ProtocolViolationError('short body', { cause: new Error('/secret/path') })
    const msg = throughWire(2, err)
    expect(msg.message).toBe('short body')
    expect(JSON.stringify(msg)).not.toContain('secret')
  })

  it.each([
    ['ascii', 'a'],
    ['2-byte', 'é'],
    ['3-byte', '€'],
    ['surrogate pairs', '💾'],
  ])('long messages are cut to 1 KiB on a character boundary (%s)', (_, unit) => {
    const long = `x${unit.repeat(2000)}`
    const msg = throughWire(4, new ProtocolViolationError(long))
    const size = new TextEncoder().encode(msg.message).length
    expect(size).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_BYTES)
    expect(size).toBeGreaterThan(MAX_ERROR_MESSAGE_BYTES - 4)
    expect(long.startsWith(msg.message)).toBe(true)
    expect(msg.message).not.toContain('\uFFFD')
  })

  it('unknown wire codes from a newer peer are decoded as numbers and reported as PEER_FAILED naming them', () => {
    const [msg] = decodeAll([wire({ type: 'error', requestId: 1, code: 4242, message: 'new thing' })])
    if (msg?.type !== 'error') throw new Error('expected an error frame')
    expect(msg.code).toBe(4242)
    const e = errorFromWire(msg.code, msg.message)
    expect(e).toBeInstanceOf(PeerFailedError)
    expect(e.message).toBe('remote peer (code 4242): new thing')
    expect((e as PeerFailedError).remoteWireCode).toBe(4242)
  })
})

describe('protocol identity', () => {
  it('is pinned', () => {
    expect(PROTOCOL_ID).toBe('/haul/transfer/1.0.0')
    expect(PROTOCOL_VERSION).toBe(1)
  })
})
