/**
 * Frame bytes → messages. The decoder is stateful over a Uint8ArrayList: push what the stream
 * delivers, then drain `frames()`. Layouts are in ./frame.ts.
 *
 * Memory: the length prefix is checked against `maxFrame` as soon as its 4 bytes are buffered,
 * before any body byte is waited for, and every count inside a body is checked against the bytes
 * left in that body before it is used. After any error the decoder refuses all further input:
 * a byte stream that broke the framing once cannot be trusted to be back in step.
 *
 * Ownership: pushed buffers are kept, not copied; do not modify them afterwards. Small fields
 * (cid, proof nodes, header) are copied out so they pin no large buffer. `chunk.payload` and
 * `page.entries` are zero-copy views when the bytes lie inside one pushed buffer, and one copy
 * otherwise (a frame split across network reads, the usual case for 1 MiB chunks arriving in
 * 64 KiB noise messages). So a view may share its ArrayBuffer with other bytes: before moving
 * `payload.buffer` to a worker, check it spans the whole buffer, or copy.
 * With `allocPayload`, every chunk payload is instead copied into a buffer the caller supplies
 * (a recycled one, so the hot path does not allocate 1 MiB per chunk).
 */

import { Uint8ArrayList } from 'uint8arraylist'
import {
  CodecUnsupportedError,
  FrameTooLargeError,
  FrameTruncatedError,
  InvalidArgumentError,
  ProtocolViolationError,
  UnknownMessageTypeError,
  UnsupportedVersionError,
} from '../errors.ts'
import { type Codec, codecFromId } from '../types.ts'
import { type FrameDecoderOptions, isMaxFrame, resolveDecoderOptions } from './config.ts'
import {
  CHUNK_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  LENGTH_BYTES,
  TWO_POW_32,
  TYPE_BYTES,
  U64_MAX_SAFE_HIGH,
} from './frame.ts'
import {
  type ChunkMessage,
  type ChunkRange,
  CID_BYTES,
  HASH_BYTES,
  HAVE_COMPLETE,
  MAX_ERROR_MESSAGE_BYTES,
  MAX_HAVE_BITS,
  MAX_HAVE_REQUEST_BITS,
  MAX_HEADER_BYTES,
  MAX_PROOF_HASHES,
  MAX_RANGES,
  type MessageType,
  messageTypeFromNumber,
  PROTOCOL_VERSION,
  type TransferMessage,
} from './messages.ts'

/**
 * Supplies the buffer a chunk payload of `length` bytes is gathered into. It must be exactly
 * `length` bytes long; the decoder fills all of it and hands it out as `chunk.payload`.
 */
export type PayloadAllocator = (length: number) => Uint8Array

export class FrameDecoder {
  readonly #list = new Uint8ArrayList()
  readonly #maxFrame: number
  readonly #allocPayload: PayloadAllocator | undefined
  #failed: unknown

  constructor(opts?: FrameDecoderOptions & { allocPayload?: PayloadAllocator }) {
    this.#maxFrame = resolveDecoderOptions(opts).maxFrame
    this.#allocPayload = opts?.allocPayload
  }

  /** Bytes received and not yet yielded as a message. */
  get buffered(): number {
    return this.#list.byteLength
  }

  /**
   * Adds bytes from the stream. Throws FrameTooLargeError or ProtocolViolationError at once when
   * the next frame's length prefix is refused, and rethrows an earlier error without buffering.
   */
  push(data: Uint8Array | Uint8ArrayList): void {
    this.#throwIfFailed()
    if (data.byteLength === 0) return
    this.#list.append(data)
    this.#guard(() => this.#frameLength())
  }

  /** Yields every complete frame buffered so far; stops at a partial one. */
  *frames(): Generator<TransferMessage> {
    this.#throwIfFailed()
    while (true) {
      const msg = this.#guard(() => this.#next())
      if (msg === undefined) return
      yield msg
    }
  }

  /**
   * Call when the stream ended, after draining `frames()`: throws FrameTruncatedError if a
   * partial frame is left (InvalidArgumentError if a whole one was never drained).
   */
  finish(): void {
    this.#throwIfFailed()
    const left = this.#list.byteLength
    if (left === 0) return
    const len = left >= LENGTH_BYTES ? this.#list.getUint32(0) : undefined
    if (len !== undefined && left >= LENGTH_BYTES + len) {
      throw new InvalidArgumentError('finish() called before frames() was drained')
    }
    const want = len === undefined ? 'a length prefix' : `${LENGTH_BYTES + len} bytes`
    this.#failed = new FrameTruncatedError(`stream ended inside a frame: ${left} of ${want}`)
    throw this.#failed
  }

  #throwIfFailed(): void {
    if (this.#failed !== undefined) throw this.#failed
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      this.#failed = err
      throw err
    }
  }

  /** The `len` of the frame at the front, checked, or undefined while its prefix is incomplete. */
  #frameLength(): number | undefined {
    if (this.#list.byteLength < LENGTH_BYTES) return undefined
    const len = this.#list.getUint32(0)
    if (len < TYPE_BYTES) throw new ProtocolViolationError('empty frame: no message type')
    if (len > this.#maxFrame) {
      throw new FrameTooLargeError(`peer announced a ${len}-byte frame; the limit is ${this.#maxFrame}`)
    }
    return len
  }

  #next(): TransferMessage | undefined {
    const len = this.#frameLength()
    if (len === undefined) return undefined
    const total = LENGTH_BYTES + len
    const list = this.#list
    if (list.byteLength < total) return undefined
    const typeNumber = list.get(LENGTH_BYTES)
    const type = messageTypeFromNumber(typeNumber)
    if (type === undefined) {
      throw new UnknownMessageTypeError(`unknown message type 0x${typeNumber.toString(16).padStart(2, '0')}`)
    }
    let msg: TransferMessage
    if (type === 'chunk') {
      if (len - TYPE_BYTES < CHUNK_HEADER_BYTES) throw malformed(type, 'body shorter than its header')
      const head = list.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES)
      const start = FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES
      const payload =
        this.#allocPayload === undefined
          ? plain(list.subarray(start, total))
          : gather(list, start, total, this.#allocPayload)
      msg = decodeChunk(new Reader(type, head), payload)
    } else {
      msg = decodeBody(type, new Reader(type, list.subarray(FRAME_HEADER_BYTES, total)))
    }
    list.consume(total)
    return msg
  }
}

/** Copies list bytes [start, end) into a buffer from `alloc`, piece by piece. */
function gather(list: Uint8ArrayList, start: number, end: number, alloc: PayloadAllocator): Uint8Array {
  const length = end - start
  const out = alloc(length)
  if (out.length !== length) {
    throw new InvalidArgumentError(`allocPayload returned ${out.length} bytes for a ${length}-byte payload`)
  }
  let skip = start
  let at = 0
  for (const buf of list) {
    if (at === length) break
    if (skip >= buf.length) {
      skip -= buf.length
      continue
    }
    const piece = buf.subarray(skip, Math.min(buf.length, skip + length - at))
    out.set(piece, at)
    at += piece.length
    skip = 0
  }
  return out
}

/** A Buffer pushed by a caller must not leak Buffer's different `slice` semantics into messages. */
function plain(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype
    ? b
    : new Uint8Array(b.buffer, b.byteOffset, b.length)
}

function decodeChunk(r: Reader, payload: Uint8Array): ChunkMessage {
  const requestId = r.requestId()
  const index = r.u64('index')
  const codecNumber = r.u8('codec')
  const codec: Codec | undefined = codecFromId(codecNumber)
  if (codec === undefined)
    throw new CodecUnsupportedError(`chunk ${index} uses unknown codec id ${codecNumber}`)
  const rawLength = r.u32('rawLength')
  r.end()
  if (codec === 'none' && rawLength !== payload.length) {
    throw malformed('chunk', `codec 'none' with rawLength ${rawLength} but ${payload.length} payload bytes`)
  }
  return { type: 'chunk', requestId, index, codec, rawLength, payload }
}

function decodeBody(type: Exclude<MessageType, 'chunk'>, r: Reader): TransferMessage {
  switch (type) {
    case 'hello': {
      const version = r.u16('version')
      if (version !== PROTOCOL_VERSION) {
        throw new UnsupportedVersionError(
          `peer speaks transfer protocol version ${version}; this build speaks ${PROTOCOL_VERSION}`,
        )
      }
      const maxFrame = r.u32('maxFrame')
      if (!isMaxFrame(maxFrame)) throw malformed(type, `maxFrame ${maxFrame} below the minimum`)
      const n = r.u8('codec count')
      const ids = r.view(n, 'codecs')
      if (new Set(ids).size !== n) throw malformed(type, 'duplicate codec ids')
      const codecs: Codec[] = []
      for (const id of ids) {
        const codec = codecFromId(id)
        if (codec !== undefined) codecs.push(codec)
      }
      r.end()
      return { type, version, codecs, maxFrame }
    }
    case 'get-header': {
      const requestId = r.requestId()
      const cid = r.copy(CID_BYTES, 'cid')
      r.end()
      return { type, requestId, cid }
    }
    case 'header': {
      const requestId = r.requestId()
      const n = r.u16('header length')
      if (n > MAX_HEADER_BYTES) throw malformed(type, `header of ${n} bytes exceeds ${MAX_HEADER_BYTES}`)
      const header = r.copy(n, 'header')
      r.end()
      return { type, requestId, header }
    }
    case 'get-pages': {
      const requestId = r.requestId()
      const cid = r.copy(CID_BYTES, 'cid')
      const firstPage = r.u64('firstPage')
      const count = r.u32('count')
      if (count === 0) throw malformed(type, 'count is 0')
      r.end()
      return { type, requestId, cid, firstPage, count }
    }
    case 'page': {
      const requestId = r.requestId()
      const pageIndex = r.u64('pageIndex')
      const p = r.u8('proof count')
      if (p > MAX_PROOF_HASHES) throw malformed(type, `${p} proof nodes exceed ${MAX_PROOF_HASHES}`)
      r.need(p * HASH_BYTES, 'proof')
      const proof: Uint8Array[] = []
      for (let i = 0; i < p; i++) proof.push(r.copy(HASH_BYTES, 'proof node'))
      const e = r.u32('entries length')
      const entries = plain(r.view(e, 'entries'))
      r.end()
      return { type, requestId, pageIndex, entries, proof }
    }
    case 'get-chunks': {
      const requestId = r.requestId()
      const cid = r.copy(CID_BYTES, 'cid')
      const n = r.u8('range count')
      if (n < 1 || n > MAX_RANGES) throw malformed(type, `${n} ranges; allowed 1 to ${MAX_RANGES}`)
      const ranges: ChunkRange[] = []
      let previousEnd = 0
      for (let i = 0; i < n; i++) {
        const start = r.u64('range start')
        const end = r.u64('range end')
        if (start >= end) throw malformed(type, `empty or inverted range [${start}, ${end})`)
        if (start < previousEnd) throw malformed(type, `range [${start}, ${end}) overlaps or is out of order`)
        previousEnd = end
        ranges.push({ start, end })
      }
      r.end()
      return { type, requestId, cid, ranges }
    }
    case 'get-have': {
      const requestId = r.requestId()
      const cid = r.copy(CID_BYTES, 'cid')
      const start = r.u64('start')
      const count = r.u32('count')
      if (count < 1 || count > MAX_HAVE_REQUEST_BITS)
        throw malformed(type, `count ${count}; allowed 1 to ${MAX_HAVE_REQUEST_BITS}`)
      r.end()
      return { type, requestId, cid, start, count }
    }
    case 'have': {
      const requestId = r.requestId()
      const flags = r.u8('flags')
      if ((flags & ~HAVE_COMPLETE) !== 0) throw malformed(type, `unknown flags 0x${flags.toString(16)}`)
      const complete = flags === HAVE_COMPLETE
      const start = r.u64('start')
      const count = r.u32('count')
      if (complete ? count !== 0 : count < 1 || count > MAX_HAVE_BITS) {
        throw malformed(
          type,
          `count ${count} (complete ${complete}); allowed ${complete ? 0 : `1 to ${MAX_HAVE_BITS}`}`,
        )
      }
      const bits = r.copy(Math.ceil(count / 8), 'bits')
      if (count % 8 !== 0 && bits[bits.length - 1]! >>> (count % 8) !== 0) {
        throw malformed(type, 'bits set past the end of the run')
      }
      r.end()
      return { type, requestId, complete, start, count, bits }
    }
    case 'end':
    case 'cancel': {
      const requestId = r.requestId()
      r.end()
      return { type, requestId }
    }
    case 'error': {
      const requestId = r.u32('requestId')
      const code = r.u16('code')
      const n = r.u16('message length')
      if (n > MAX_ERROR_MESSAGE_BYTES)
        throw malformed(type, `message of ${n} bytes exceeds ${MAX_ERROR_MESSAGE_BYTES}`)
      const bytes = r.view(n, 'message')
      r.end()
      let message: string
      try {
        message = utf8.decode(bytes)
      } catch {
        throw malformed(type, 'message is not valid UTF-8')
      }
      return { type, requestId, code, message }
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function malformed(type: MessageType, what: string): ProtocolViolationError {
  return new ProtocolViolationError(`malformed ${type} frame: ${what}`)
}

/** Bounds-checked big-endian reads over one frame body. */
class Reader {
  readonly #type: MessageType
  readonly #bytes: Uint8Array
  readonly #view: DataView
  #pos = 0

  constructor(type: MessageType, bytes: Uint8Array) {
    this.#type = type
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  need(n: number, field: string): void {
    if (n > this.#bytes.length - this.#pos) {
      throw malformed(this.#type, `${field} needs ${n} bytes, ${this.#bytes.length - this.#pos} left`)
    }
  }

  u8(field: string): number {
    this.need(1, field)
    return this.#view.getUint8(this.#pos++)
  }

  u16(field: string): number {
    this.need(2, field)
    const v = this.#view.getUint16(this.#pos)
    this.#pos += 2
    return v
  }

  u32(field: string): number {
    this.need(4, field)
    const v = this.#view.getUint32(this.#pos)
    this.#pos += 4
    return v
  }

  u64(field: string): number {
    this.need(8, field)
    const high = this.#view.getUint32(this.#pos)
    const low = this.#view.getUint32(this.#pos + 4)
    if (high > U64_MAX_SAFE_HIGH) throw malformed(this.#type, `${field} exceeds 2^53 - 1`)
    this.#pos += 8
    return high * TWO_POW_32 + low
  }

  /** Request ids are never 0 outside `error`: 0 names the connection. */
  requestId(): number {
    const id = this.u32('requestId')
    if (id === 0) throw malformed(this.#type, 'requestId 0 is reserved')
    return id
  }

  view(n: number, field: string): Uint8Array {
    this.need(n, field)
    const v = this.#bytes.subarray(this.#pos, this.#pos + n)
    this.#pos += n
    return v
  }

  /** `new Uint8Array(view)` always copies; `.slice()` would not on a Buffer. */
  copy(n: number, field: string): Uint8Array {
    return new Uint8Array(this.view(n, field))
  }

  end(): void {
    const left = this.#bytes.length - this.#pos
    if (left !== 0) throw malformed(this.#type, `${left} trailing bytes`)
  }
}
