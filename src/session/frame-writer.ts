import { TooManyRequestsError } from '../errors.ts'
import type { FrameStream, WriteOptions } from '../net/stream-io.ts'
import { encodeMessage } from '../protocol/encoder.ts'
import type { TransferMessage } from '../protocol/messages.ts'

/**
 * Serializes frames onto one stream so the parts of two frames never
 * interleave. Each write still waits for the stream's drain; the number of
 * frames waiting their turn is bounded (a peer that makes us queue more than
 * `maxQueued` replies is flooding us and gets cut off).
 */
export class FrameWriter {
  readonly #stream: FrameStream
  readonly #maxQueued: number
  #maxFrame: number | undefined
  #tail: Promise<void> = Promise.resolve()
  #queued = 0

  constructor(stream: FrameStream, opts: { maxQueued?: number; maxFrame?: number } = {}) {
    this.#stream = stream
    this.#maxQueued = opts.maxQueued ?? 128
    this.#maxFrame = opts.maxFrame
  }

  /** The peer's announced frame limit, learned from its hello. */
  set maxFrame(n: number) {
    this.#maxFrame = n
  }

  get queued(): number {
    return this.#queued
  }

  /** Resolves once every frame sent so far has been written (or has failed). */
  written(): Promise<void> {
    return this.#tail
  }

  /** Bytes handed to the stream that the muxer has not taken yet. */
  get bufferedBytes(): number {
    return this.#stream.outgoingBufferedBytes
  }

  /**
   * Sends one frame, or several as one write: a reply's last frame and its `end` then travel in
   * one yamux frame and one Noise message instead of two.
   */
  send(msg: TransferMessage | readonly TransferMessage[], opts: WriteOptions = {}): Promise<void> {
    if (this.#queued >= this.#maxQueued) {
      return Promise.reject(
        new TooManyRequestsError(`more than ${this.#maxQueued} frames waiting to be sent`),
      )
    }
    const parts = isFrameList(msg)
      ? msg.flatMap((m) => encodeMessage(m, this.#maxFrame))
      : encodeMessage(msg, this.#maxFrame)
    this.#queued++
    const p = this.#tail.then(() => this.#stream.write(parts, opts))
    const settled = p.finally(() => this.#queued--)
    this.#tail = settled.catch(() => {})
    return settled
  }
}

/** `Array.isArray` does not narrow a readonly array out of a union. */
function isFrameList(m: TransferMessage | readonly TransferMessage[]): m is readonly TransferMessage[] {
  return Array.isArray(m)
}
