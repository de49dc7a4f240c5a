/**
 * Frame bytes → messages. The decoder is stateful over a Uint8ArrayList: push what the stream
 * delivers, then drain `frames()`. Layouts are in ./frame.ts; the per-message body parsers are in
 * ./body-decoder.ts.
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
import { CHUNK_HEADER_BYTES, FRAME_HEADER_BYTES, LENGTH_BYTES, TYPE_BYTES } from './frame.ts'
import { type ChunkMessage, messageTypeFromNumber, type TransferMessage } from './messages.ts'

/**
 * Supplies the buffer a chunk payload of `length` bytes is gathered into. It must be exactly
 * `length` bytes long; the decoder fills all of it and hands it out as `chunk.payload`.
 */
export type PayloadAllocator = (length: number) => Uint8Array

export class FrameDecoder {
  readonly #list = new Uint8ArrayList()
  readonly #maxFrame: number
  readonly #allocPayload: PayloadAllocator | undefined
  /** The chunk whose payload is being copied into its caller-supplied buffer, `at` bytes so far. */
  #gathering: { msg: ChunkMessage; at: number } | undefined
  #failed: unknown

  constructor(opts?: FrameDecoderOptions & { allocPayload?: PayloadAllocator }) {
    this.#maxFrame = resolveDecoderOptions(opts).maxFrame
    this.#allocPayload = opts?.allocPayload
  }

  /** Bytes received and not yet yielded as a message. */
  get buffered(): number {
    const g = this.#gathering
    return this.#list.byteLength + (g === undefined ? 0 : FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES + g.at)
  }

  /**
   * Adds bytes from the stream. Throws FrameTooLargeError or ProtocolViolationError at once when
   * the next frame's length prefix is refused, and rethrows an earlier error without buffering.
   */
  push(data: Uint8Array | Uint8ArrayList): void {
    this.#throwIfFailed()
    if (data.byteLength === 0) return
    this.#list.append(data)
    if (this.#gathering === undefined) this.#guard(() => this.#frameLength())
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
    if (this.#gathering !== undefined) return this.#gather()
    const len = this.#frameLength()
    if (len === undefined) return undefined
    const total = LENGTH_BYTES + len
    const list = this.#list
    const typeNumber = list.byteLength > LENGTH_BYTES ? list.get(LENGTH_BYTES) : undefined
    if (typeNumber === undefined) return undefined
    const type = messageTypeFromNumber(typeNumber)
    if (type === undefined) {
      throw new UnknownMessageTypeError(`unknown message type 0x${typeNumber.toString(16).padStart(2, '0')}`)
    }
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
