import { ConfigInvalidError } from '../errors.ts'
import { DEFAULT_MAX_FRAME, FRAME_SIDES, type FrameSide, MAX_FRAME_LIMIT, MIN_MAX_FRAME } from './frame.ts'

export interface FrameDecoderOptions {
  /**
   * Largest frame accepted, as the value of the length prefix (type byte + body). A frame that
   * announces more fails with FrameTooLargeError before its body is buffered. Announce the same
   * number in `hello` so the peer never sends more.
   * Between MIN_MAX_FRAME (64 KiB) and 2^32 − 1.
   * @default DEFAULT_MAX_FRAME (8 MiB + 64 KiB)
   */
  maxFrame?: number
  /**
   * Which half of the protocol this decoder reads, and so the limit of each message type
   * (`frameLimit` in ./frame.ts): `serving` accepts only what a receiver sends, each type up to
   * the largest frame a correct peer builds (about 1 KiB); `receiving` accepts `chunk` and
   * `page` up to `maxFrame` and every other type up to MIN_MAX_FRAME. A frame over its type's
   * limit fails with FrameTooLargeError, a type the side never reads with ProtocolViolationError,
   * both as soon as the type byte is in.
   * @default 'receiving'
   */
  side?: FrameSide
}

export const defaultDecoderOptions: Readonly<Required<FrameDecoderOptions>> = Object.freeze({
  maxFrame: DEFAULT_MAX_FRAME,
  side: 'receiving',
})

/** Merges over the defaults without touching the caller's object; throws ConfigInvalidError. */
export function resolveDecoderOptions(opts: FrameDecoderOptions = {}): Required<FrameDecoderOptions> {
  const resolved = {
    maxFrame: opts.maxFrame ?? defaultDecoderOptions.maxFrame,
    side: opts.side ?? defaultDecoderOptions.side,
  }
  verifyDecoderOptions(resolved)
  return resolved
}

export function verifyDecoderOptions(opts: Required<FrameDecoderOptions>): void {
  if (!isMaxFrame(opts.maxFrame)) {
    throw new ConfigInvalidError(
      `maxFrame must be an integer from ${MIN_MAX_FRAME} to ${MAX_FRAME_LIMIT}, got ${String(opts.maxFrame)}`,
    )
  }
  if (!FRAME_SIDES.includes(opts.side)) {
    throw new ConfigInvalidError(`side must be one of ${FRAME_SIDES.join(', ')}, got ${String(opts.side)}`)
  }
}

export function isMaxFrame(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) >= MIN_MAX_FRAME && (n as number) <= MAX_FRAME_LIMIT
}
