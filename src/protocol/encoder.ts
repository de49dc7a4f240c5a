/**
 * Messages → frame bytes, exactly as laid out in ./frame.ts. Every field is checked first
 * (InvalidArgumentError: a local bug must not become a frame the peer rejects as hostile), then
 * the frame length against the limit (FrameTooLargeError), then one buffer is allocated.
 */

import {
  CodecUnsupportedError,
  type ErrorCode,
  FrameTooLargeError,
  InvalidArgumentError,
  isHaulError,
  WIRE_CODES,
} from '../errors.ts'
import { CODEC_IDS, type Codec } from '../types.ts'
import { assertNever } from '../util/never.ts'
import { isMaxFrame } from './config.ts'
import {
  CHUNK_HEADER_BYTES,
  DEFAULT_MAX_FRAME,
  ERROR_FIXED_BYTES,
  FRAME_HEADER_BYTES,
  GET_CHUNKS_FIXED_BYTES,
  GET_HAVE_BYTES,
  GET_HEADER_BYTES,
  GET_PAGES_BYTES,
  HAVE_FIXED_BYTES,
  HEADER_FIXED_BYTES,
  HELLO_FIXED_BYTES,
  LENGTH_BYTES,
  MAX_FRAME_LIMIT,
  MIN_MAX_FRAME,
  PAGE_FIXED_BYTES,
  RANGE_BYTES,
  REQUEST_ID_BYTES,
  TWO_POW_32,
  TYPE_BYTES,
} from './frame.ts'
import {
  CID_BYTES,
  type ErrorMessage,
  HASH_BYTES,
  HAVE_COMPLETE,
  MAX_ERROR_MESSAGE_BYTES,
  MAX_HAVE_BITS,
  MAX_HAVE_REQUEST_BITS,
  MAX_HEADER_BYTES,
  MAX_INDEX,
  MAX_PROOF_HASHES,
  MAX_RANGES,
  MAX_REQUEST_ID,
  MESSAGE_TYPES,
  PROTOCOL_VERSION,
  SECRET_BYTES,
  type TransferMessage,
} from './messages.ts'

const utf8 = new TextEncoder()

/**
 * Encodes one message as the buffers to write, in order. A `chunk` gives two: the frame header
 * and the caller's `payload` itself (never copied, so do not reuse it until written); every other
 * message gives one buffer.
 *
 * @param maxFrame the peer's limit from its hello, @default DEFAULT_MAX_FRAME
 * @throws FrameTooLargeError when the frame would exceed `maxFrame`
 * @throws InvalidArgumentError for a field outside its range; CodecUnsupportedError for a codec
 */
export function encodeMessage(msg: TransferMessage, maxFrame: number = DEFAULT_MAX_FRAME): Uint8Array[] {
  if (!isMaxFrame(maxFrame)) {
    throw new InvalidArgumentError(`maxFrame must be an integer from ${MIN_MAX_FRAME} to ${MAX_FRAME_LIMIT}`)
  }
  switch (msg.type) {
    case 'hello': {
      if (msg.version !== PROTOCOL_VERSION) throw invalid('hello', 'version', msg.version)
      if (!isMaxFrame(msg.maxFrame)) throw invalid('hello', 'maxFrame', msg.maxFrame)
      if (!Array.isArray(msg.codecs) || msg.codecs.length > 0xff) throw invalid('hello', 'codecs', msg.codecs)
      const ids = msg.codecs.map(codecId)
      if (new Set(ids).size !== ids.length) throw invalid('hello', 'codecs (duplicate)', msg.codecs)
      const w = new Writer(msg.type, HELLO_FIXED_BYTES + ids.length, maxFrame)
      w.u16(msg.version)
      w.u32(msg.maxFrame)
      w.u8(ids.length)
      for (const id of ids) w.u8(id)
      return [w.done()]
    }
    case 'get-header': {
      const secret = secretOf(msg.type, msg.secret)
      const w = new Writer(msg.type, GET_HEADER_BYTES + secret.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.bytes(exact(msg.type, 'cid', msg.cid, CID_BYTES))
      w.bytes(secret)
      return [w.done()]
    }
    case 'header': {
      const header = bounded(msg.type, 'header', msg.header, MAX_HEADER_BYTES)
      const w = new Writer(msg.type, HEADER_FIXED_BYTES + header.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.u16(header.length)
      w.bytes(header)
      return [w.done()]
    }
    case 'get-pages': {
      if (!Number.isInteger(msg.count) || msg.count < 1 || msg.count > 0xffff_ffff) {
        throw invalid(msg.type, 'count', msg.count)
      }
      const secret = secretOf(msg.type, msg.secret)
      const w = new Writer(msg.type, GET_PAGES_BYTES + secret.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.bytes(exact(msg.type, 'cid', msg.cid, CID_BYTES))
      w.u64(index(msg.type, 'firstPage', msg.firstPage))
      w.u32(msg.count)
      w.bytes(secret)
      return [w.done()]
    }
    case 'page': {
      const entries = bounded(msg.type, 'entries', msg.entries, 0xffff_ffff)
      if (!Array.isArray(msg.proof) || msg.proof.length > MAX_PROOF_HASHES) {
        throw invalid(msg.type, 'proof', msg.proof)
      }
      const p = msg.proof.length
      const w = new Writer(msg.type, PAGE_FIXED_BYTES + HASH_BYTES * p + entries.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.u64(index(msg.type, 'pageIndex', msg.pageIndex))
      w.u8(p)
      for (const node of msg.proof) w.bytes(exact(msg.type, 'proof node', node, HASH_BYTES))
      w.u32(entries.length)
      w.bytes(entries)
      return [w.done()]
    }
    case 'get-chunks': {
      const { ranges } = msg
      if (!Array.isArray(ranges) || ranges.length < 1 || ranges.length > MAX_RANGES) {
        throw invalid(msg.type, 'ranges', ranges)
      }
      const secret = secretOf(msg.type, msg.secret)
      const w = new Writer(
        msg.type,
        GET_CHUNKS_FIXED_BYTES + RANGE_BYTES * ranges.length + secret.length,
        maxFrame,
      )
      w.u32(requestId(msg.type, msg.requestId))
      w.bytes(exact(msg.type, 'cid', msg.cid, CID_BYTES))
      w.u8(ranges.length)
      let previousEnd = 0
      for (const r of ranges) {
        const start = index(msg.type, 'range start', r.start)
        const end = index(msg.type, 'range end', r.end)
        if (start >= end || start < previousEnd) throw invalid(msg.type, 'range', r)
        previousEnd = end
        w.u64(start)
        w.u64(end)
      }
      w.bytes(secret)
      return [w.done()]
    }
    case 'chunk': {
      const payload = bounded(msg.type, 'payload', msg.payload, MAX_FRAME_LIMIT)
      const codec = codecId(msg.codec)
      if (!Number.isInteger(msg.rawLength) || msg.rawLength < 0 || msg.rawLength > 0xffff_ffff) {
        throw invalid(msg.type, 'rawLength', msg.rawLength)
      }
      if (msg.codec === 'none' && msg.rawLength !== payload.length) {
        throw invalid(msg.type, "rawLength (codec 'none' needs payload length)", msg.rawLength)
      }
      const w = new Writer(msg.type, CHUNK_HEADER_BYTES, maxFrame, payload.length)
      w.u32(requestId(msg.type, msg.requestId))
      w.u64(index(msg.type, 'index', msg.index))
      w.u8(codec)
      w.u32(msg.rawLength)
      return [w.done(), payload]
    }
    case 'get-have': {
      if (!Number.isInteger(msg.count) || msg.count < 1 || msg.count > MAX_HAVE_REQUEST_BITS) {
        throw invalid(msg.type, 'count', msg.count)
      }
      const secret = secretOf(msg.type, msg.secret)
      const w = new Writer(msg.type, GET_HAVE_BYTES + secret.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.bytes(exact(msg.type, 'cid', msg.cid, CID_BYTES))
      w.u64(index(msg.type, 'start', msg.start))
      w.u32(msg.count)
      w.bytes(secret)
      return [w.done()]
    }
    case 'have': {
      const complete = msg.complete === true
      const count = msg.count
      if (!Number.isInteger(count) || (complete ? count !== 0 : count < 1 || count > MAX_HAVE_BITS)) {
        throw invalid(msg.type, 'count', count)
      }
      const bits = exact(msg.type, 'bits', msg.bits, Math.ceil(count / 8))
      if (count % 8 !== 0 && bits[bits.length - 1]! >>> (count % 8) !== 0) {
        throw invalid(msg.type, 'bits (set past the end of the run)', count)
      }
      const w = new Writer(msg.type, HAVE_FIXED_BYTES + bits.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      w.u8(complete ? HAVE_COMPLETE : 0)
      w.u64(index(msg.type, 'start', msg.start))
      w.u32(count)
      w.bytes(bits)
      return [w.done()]
    }
    case 'end':
    case 'cancel': {
      const w = new Writer(msg.type, REQUEST_ID_BYTES, maxFrame)
      w.u32(requestId(msg.type, msg.requestId))
      return [w.done()]
    }
    case 'error': {
      if (!Number.isInteger(msg.code) || msg.code < 0 || msg.code > 0xffff)
        throw invalid(msg.type, 'code', msg.code)
      if (typeof msg.message !== 'string') throw invalid(msg.type, 'message', msg.message)
      const text = utf8.encode(msg.message)
      if (text.length > MAX_ERROR_MESSAGE_BYTES) {
        throw invalid(msg.type, `message (over ${MAX_ERROR_MESSAGE_BYTES} bytes)`, text.length)
      }
      const w = new Writer(msg.type, ERROR_FIXED_BYTES + text.length, maxFrame)
      w.u32(requestId(msg.type, msg.requestId, true))
      w.u16(msg.code)
      w.u16(text.length)
      w.bytes(text)
      return [w.done()]
    }
    default:
      assertNever(
        msg,
        (m) =>
          new InvalidArgumentError(`cannot encode message type ${String((m as { type?: unknown }).type)}`),
      )
  }
}

/**
 * What the peer is told for failures whose own message is about this machine: its file paths,
 * errno text, its storage. The code travels as is; the sentence says what the peer can do.
 */
const PEER_TEXT: Partial<Record<ErrorCode, string>> = {
  // One answer, whatever the reason (unknown, another ticket's secret, unpublished meanwhile):
  // the message must not tell them apart (src/serve/access.ts).
  CONTENT_NOT_FOUND:
    'this peer does not publish that content id for this ticket: check the ticket, or ask the sender to publish again',
  CONTENT_CHANGED:
    "the sender's file changed since it was published, so it is no longer served: ask the sender to publish it again for a new ticket",
  CONTENT_PREPARING:
    'the sender was restarted and serves it once it has published it again (it is indexing its file, or starting up): asking again shortly',
  SOURCE_INVALID:
    'the sender cannot read the file it published: ask the sender to check it and publish it again',
  PERMISSION_DENIED: 'the sender may not read the file it published: ask the sender to check its permissions',
  NO_SPACE: 'the sender ran out of storage: try again later',
  FILE_TOO_LARGE: 'the sender failed on its own storage: try again later',
  TOO_MANY_OPEN_FILES:
    'the sender has too many files open: try again later, or ask the sender to raise its limit',
  DESTINATION_INVALID: 'the sender failed on its own storage: try again later',
  DESTINATION_BUSY: 'the sender failed on its own storage: try again later',
  DESTINATION_EXISTS: 'the sender failed on its own storage: try again later',
  CONFIG_INVALID: 'the sender is misconfigured: ask the sender to check its settings',
  INTERNAL: 'internal error',
}

/**
 * Builds the `error` frame for a failure. A `HaulError` keeps its wire code, and its message (cut
 * to {@link MAX_ERROR_MESSAGE_BYTES} on a character boundary) unless the message is about this
 * machine (PEER_TEXT); anything else becomes `INTERNAL` with a fixed message, so stack traces and
 * local details never reach the peer.
 */
export function errorMessage(requestId: number, err: unknown): ErrorMessage {
  if (isHaulError(err)) {
    const message = PEER_TEXT[err.code] ?? truncateUtf8(err.message)
    return { type: 'error', requestId, code: err.wireCode, message }
  }
  return { type: 'error', requestId, code: WIRE_CODES.INTERNAL, message: 'internal error' }
}

const scratch = new Uint8Array(MAX_ERROR_MESSAGE_BYTES)

/** `encodeInto` stops before a character that does not fit, so the cut never splits one. */
function truncateUtf8(s: string): string {
  if (s.length * 3 <= MAX_ERROR_MESSAGE_BYTES) return s
  const { read } = utf8.encodeInto(s, scratch)
  return read === s.length ? s : s.slice(0, read)
}

/** Writes one frame header + body into a single exact-size buffer. */
class Writer {
  readonly #buf: Uint8Array
  readonly #view: DataView
  #pos: number

  /** `trailing` counts bytes the caller sends after this buffer (a chunk payload). */
  constructor(type: TransferMessage['type'], bodyBytes: number, maxFrame: number, trailing = 0) {
    const len = TYPE_BYTES + bodyBytes + trailing
    if (len > maxFrame) {
      throw new FrameTooLargeError(
        `a ${type} frame of ${len} bytes exceeds the peer's limit of ${maxFrame} bytes`,
      )
    }
    this.#buf = new Uint8Array(FRAME_HEADER_BYTES + bodyBytes)
    this.#view = new DataView(this.#buf.buffer)
    this.#view.setUint32(0, len)
    this.#view.setUint8(LENGTH_BYTES, MESSAGE_TYPES[type])
    this.#pos = FRAME_HEADER_BYTES
  }

  u8(v: number): void {
    this.#view.setUint8(this.#pos, v)
    this.#pos += 1
  }

  u16(v: number): void {
    this.#view.setUint16(this.#pos, v)
    this.#pos += 2
  }

  u32(v: number): void {
    this.#view.setUint32(this.#pos, v)
    this.#pos += 4
  }

  /** `v` is a checked safe integer, so the split into two words is exact. */
  u64(v: number): void {
    this.u32(Math.floor(v / TWO_POW_32))
    this.u32(v % TWO_POW_32)
  }

  bytes(b: Uint8Array): void {
    this.#buf.set(b, this.#pos)
    this.#pos += b.length
  }

  done(): Uint8Array {
    if (this.#pos !== this.#buf.length)
      throw new Error(`encoder bug: wrote ${this.#pos} of ${this.#buf.length}`)
    return this.#buf
  }
}

function invalid(type: string, field: string, value: unknown): InvalidArgumentError {
  const shown = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)
  return new InvalidArgumentError(`cannot encode ${type}: invalid ${field}: ${shown?.slice(0, 80)}`)
}

function requestId(type: string, v: number, allowZero = false): number {
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > MAX_REQUEST_ID)
    throw invalid(type, 'requestId', v)
  return v
}

function index(type: string, field: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_INDEX) throw invalid(type, field, v)
  return v
}

function exact(type: string, field: string, b: Uint8Array, length: number): Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== length) {
    throw invalid(type, `${field} (need ${length} bytes)`, b instanceof Uint8Array ? b.length : b)
  }
  return b
}

const NO_SECRET = new Uint8Array(0)

/** A request's optional secret as the bytes to write: none, or exactly SECRET_BYTES. */
function secretOf(type: string, secret: Uint8Array | undefined): Uint8Array {
  return secret === undefined ? NO_SECRET : exact(type, 'secret', secret, SECRET_BYTES)
}

function bounded(type: string, field: string, b: Uint8Array, max: number): Uint8Array {
  if (!(b instanceof Uint8Array) || b.length > max) {
    throw invalid(type, `${field} (at most ${max} bytes)`, b instanceof Uint8Array ? b.length : b)
  }
  return b
}

function codecId(codec: Codec): number {
  const id = Object.hasOwn(CODEC_IDS, codec) ? CODEC_IDS[codec] : undefined
  if (id === undefined) throw new CodecUnsupportedError(`cannot encode unknown codec ${String(codec)}`)
  return id
}
