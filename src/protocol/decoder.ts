/**
 * Frame bytes → messages. The decoder is stateful over a Uint8ArrayList: push what the stream
 * delivers, then drain `frames()`. Layouts are in ./frame.ts; the per-message body parsers are in
 * ./body-decoder.ts.
 *
 * Memory: the length prefix is checked against `maxFrame` as soon as its 4 bytes are buffered,
 * and against the limit of its message type for this decoder's side (`frameLimit`, ./frame.ts)
 * as soon as the type byte is, before any body byte is waited for; every count inside a body is
 * checked against the bytes left in that body before it is used. A partial frame of at most
 * COMPACT_BYTES left after `frames()` is copied out of the network buffers it came in, so what
 * a peer keeps unfinished holds only its own bytes (`buffered`), not the 64 KiB messages around
 * them. After any error the decoder refuses all further input: a byte stream that broke the
 * framing once cannot be trusted to be back in step.
 *
 * Ownership: pushed buffers are kept, not copied; do not modify them afterwards. Small fields
 * (cid, proof nodes, header) are copied out so they pin no large buffer. `chunk.payload` and
 * `page.entries` are zero-copy views when the bytes lie inside one pushed buffer, and one copy
 * otherwise (a frame split across network reads, the usual case for 1 MiB chunks arriving in
 * 64 KiB noise messages). So a view may share its ArrayBuffer with other bytes: before moving
 * `payload.buffer` to a worker, check it spans the whole buffer, or copy.
 * With `allocPayload`, every chunk payload is instead copied into a buffer the caller supplies
 * (a recycled one, so the hot path does not allocate 1 MiB per chunk), and copied as it arrives:
 * once a chunk's header is in, each `frames()` call moves the payload bytes buffered so far into
 * that buffer and lets go of the pushed pieces, so a payload that trickles in between other
 * streams' data does not pin the network buffers it came in (measured: no change in peak memory
 * at 1,000 transfers; see README, Memory and limits).
 */

import { Uint8ArrayList } from 'uint8arraylist'
import {
  FrameTooLargeError,
  FrameTruncatedError,
  InvalidArgumentError,
  ProtocolViolationError,
  UnknownMessageTypeError,
} from '../errors.ts'
import { decodeBody, decodeChunk, malformed, plain, Reader } from './body-decoder.ts'
import { type FrameDecoderOptions, resolveDecoderOptions } from './config.ts'
import {
  CHUNK_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  type FrameSide,
  frameLimit,
  LENGTH_BYTES,
  TYPE_BYTES,
} from './frame.ts'
import {
  type ChunkMessage,
  type MessageType,
  messageTypeFromNumber,
  type TransferMessage,
} from './messages.ts'

/**
 * A partial frame of at most this many bytes is copied into its own buffer once `frames()` has
 * drained the whole ones (only when the buffers it sits in are larger). Every request frame is
 * smaller; a copy this size costs less than a microsecond.
 */
export const COMPACT_BYTES = 4096

/**
 * Supplies the buffer a chunk payload of `length` bytes is gathered into. It must be exactly
 * `length` bytes long; the decoder fills all of it and hands it out as `chunk.payload`.
 */
export type PayloadAllocator = (length: number) => Uint8Array

export class FrameDecoder {
  readonly #list = new Uint8ArrayList()
  readonly #maxFrame: number
  readonly #side: FrameSide
  readonly #allocPayload: PayloadAllocator | undefined
  /** The chunk whose payload is being copied into its caller-supplied buffer, `at` bytes so far. */
  #gathering: { msg: ChunkMessage; at: number } | undefined
  #failed: unknown

  constructor(opts?: FrameDecoderOptions & { allocPayload?: PayloadAllocator }) {
    const o = resolveDecoderOptions(opts)
    this.#maxFrame = o.maxFrame
    this.#side = o.side
    this.#allocPayload = opts?.allocPayload
  }

  /** Bytes received and not yet yielded as a message. */
  get buffered(): number {
    const g = this.#gathering
    return this.#list.byteLength + (g === undefined ? 0 : FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES + g.at)
  }

  /**
   * Adds bytes from the stream. Throws at once when the next frame's length prefix or type is
   * refused (FrameTooLargeError, UnknownMessageTypeError, ProtocolViolationError), and rethrows
   * an earlier error without buffering.
   */
  push(data: Uint8Array | Uint8ArrayList): void {
    this.#throwIfFailed()
    if (data.byteLength === 0) return
    this.#list.append(data)
    if (this.#gathering === undefined) this.#guard(() => this.#head())
  }

  /** Yields every complete frame buffered so far; stops at a partial one. */
  *frames(): Generator<TransferMessage> {
    this.#throwIfFailed()
    while (true) {
      const msg = this.#guard(() => this.#next())
      if (msg === undefined) {
        this.#compact()
        return
      }
      yield msg
    }
  }

  /**
   * Call when the stream ended, after draining `frames()`: throws FrameTruncatedError if a
   * partial frame is left (InvalidArgumentError if a whole one was never drained).
   */
  finish(): void {
    this.#throwIfFailed()
    const g = this.#gathering
    if (g !== undefined) {
      const total = FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES + g.msg.payload.length
      this.#failed = new FrameTruncatedError(
        `stream ended inside a frame: ${this.buffered} of ${total} bytes`,
      )
      throw this.#failed
    }
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

  /**
   * The `len` and type of the frame at the front, checked, or undefined while its length prefix
   * and type byte are not both in (the length is checked as soon as it is).
   */
  #head(): { len: number; type: MessageType } | undefined {
    const list = this.#list
    if (list.byteLength < LENGTH_BYTES) return undefined
    const len = list.getUint32(0)
    if (len < TYPE_BYTES) throw new ProtocolViolationError('empty frame: no message type')
    if (len > this.#maxFrame) {
      throw new FrameTooLargeError(`peer announced a ${len}-byte frame; the limit is ${this.#maxFrame}`)
    }
    if (list.byteLength < FRAME_HEADER_BYTES) return undefined
    const typeNumber = list.get(LENGTH_BYTES)
    const type = messageTypeFromNumber(typeNumber)
    if (type === undefined) {
      throw new UnknownMessageTypeError(`unknown message type 0x${typeNumber.toString(16).padStart(2, '0')}`)
    }
    const limit = frameLimit(this.#side, type, this.#maxFrame)
    if (limit === 0) throw new ProtocolViolationError(`a receiver does not send ${type}`)
    if (len > limit) {
      throw new FrameTooLargeError(
        `peer announced a ${len}-byte ${type} frame; the limit for ${type} is ${limit}`,
      )
    }
    return { len, type }
  }

  /** Copies a small partial frame out of larger network buffers (see COMPACT_BYTES). */
  #compact(): void {
    const list = this.#list
    const n = list.byteLength
    if (n === 0 || n > COMPACT_BYTES || this.#gathering !== undefined) return
    let held = 0
    for (const buf of list) held += buf.buffer.byteLength
    if (held <= n + COMPACT_BYTES) return
    const own = list.slice()
    list.consume(n)
    list.append(own)
  }

  #next(): TransferMessage | undefined {
    if (this.#gathering !== undefined) return this.#gather()
    const head = this.#head()
    if (head === undefined) return undefined
    const { len, type } = head
    const total = LENGTH_BYTES + len
    const list = this.#list
    const start = FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES
    if (type === 'chunk' && len - TYPE_BYTES < CHUNK_HEADER_BYTES) {
      throw malformed(type, 'body shorter than its header')
    }
    if (type === 'chunk' && this.#allocPayload !== undefined) {
      if (list.byteLength < start) return undefined
      const length = total - start
      const out = this.#allocPayload(length)
      if (out.length !== length) {
        throw new InvalidArgumentError(
          `allocPayload returned ${out.length} bytes for a ${length}-byte payload`,
        )
      }
      const msg = decodeChunk(new Reader(type, list.subarray(FRAME_HEADER_BYTES, start)), out)
      list.consume(start)
      this.#gathering = { msg, at: 0 }
      return this.#gather()
    }
    if (list.byteLength < total) return undefined
    let msg: TransferMessage
    if (type === 'chunk') {
      const head = list.subarray(FRAME_HEADER_BYTES, start)
      msg = decodeChunk(new Reader(type, head), plain(list.subarray(start, total)))
    } else {
      msg = decodeBody(type, new Reader(type, list.subarray(FRAME_HEADER_BYTES, total)))
    }
    list.consume(total)
    return msg
  }

  /** Moves buffered payload bytes into the gathering chunk; yields it once it is whole. */
  #gather(): ChunkMessage | undefined {
    const g = this.#gathering!
    const out = g.msg.payload
    const list = this.#list
    let taken = 0
    for (const buf of list) {
      if (g.at === out.length) break
      const piece = buf.length <= out.length - g.at ? buf : buf.subarray(0, out.length - g.at)
      out.set(piece, g.at)
      g.at += piece.length
      taken += piece.length
    }
    list.consume(taken)
    if (g.at < out.length) return undefined
    this.#gathering = undefined
    return g.msg
  }
}
