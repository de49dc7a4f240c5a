/**
 * Frame body → message: one parser per message type, over a bounds-checked Reader. The framing
 * (length prefix, type byte, streaming) is ./decoder.ts; every count read here is checked against
 * the bytes left in the body before it is used.
 */

import { CodecUnsupportedError, ProtocolViolationError, UnsupportedVersionError } from '../errors.ts'
import { type Codec, codecFromId } from '../types.ts'
import { isMaxFrame } from './config.ts'
import { TWO_POW_32, U64_MAX_SAFE_HIGH } from './frame.ts'
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
  PROTOCOL_VERSION,
  SECRET_BYTES,
  type TransferMessage,
} from './messages.ts'

/** A Buffer pushed by a caller must not leak Buffer's different `slice` semantics into messages. */
export function plain(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype
    ? b
    : new Uint8Array(b.buffer, b.byteOffset, b.length)
}

export function decodeChunk(r: Reader, payload: Uint8Array): ChunkMessage {
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

export function decodeBody(type: Exclude<MessageType, 'chunk'>, r: Reader): TransferMessage {
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
      return { type, requestId, cid, ...r.secret() }
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
      return { type, requestId, cid, firstPage, count, ...r.secret() }
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
      return { type, requestId, cid, ranges, ...r.secret() }
    }
    case 'get-have': {
      const requestId = r.requestId()
      const cid = r.copy(CID_BYTES, 'cid')
      const start = r.u64('start')
      const count = r.u32('count')
      if (count < 1 || count > MAX_HAVE_REQUEST_BITS)
        throw malformed(type, `count ${count}; allowed 1 to ${MAX_HAVE_REQUEST_BITS}`)
      return { type, requestId, cid, start, count, ...r.secret() }
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

export function malformed(type: MessageType, what: string): ProtocolViolationError {
  return new ProtocolViolationError(`malformed ${type} frame: ${what}`)
}

/** Bounds-checked big-endian reads over one frame body. */
export class Reader {
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

  /**
   * A request's last, optional field (frame.ts): `{ secret }` when exactly SECRET_BYTES are
   * left, `{}` when none are; the body ends either way.
   */
  secret(): { secret?: Uint8Array } {
    if (this.#bytes.length - this.#pos !== SECRET_BYTES) {
      this.end()
      return {}
    }
    return { secret: this.copy(SECRET_BYTES, 'secret') }
  }

  end(): void {
    const left = this.#bytes.length - this.#pos
    if (left !== 0) throw malformed(this.#type, `${left} trailing bytes`)
  }
}
