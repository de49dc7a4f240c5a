/**
 * The main thread's side of handing work to the pool's threads: arguments checked before anything
 * moves (a buffer must own its whole ArrayBuffer, since moving a view of a shared slab would
 * detach unrelated data), buffers moved, and replies turned back into results (packed hashes
 * split, a worker's error code rebuilt as its HaulError class).
 */
import {
  ChunkVerificationError,
  CodecUnsupportedError,
  DecompressionError,
  type ErrorCode,
  type HaulError,
  InternalError,
  InvalidArgumentError,
} from '../errors.ts'
import { ownsBuffer } from './codecs.ts'
import { type ErrorReply, SHA256_BYTES } from './messages.ts'

const REMOTE_ERRORS: Partial<Record<ErrorCode, new (message: string) => HaulError>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  CODEC_UNSUPPORTED: CodecUnsupportedError,
  DECOMPRESSION_FAILED: DecompressionError,
  CHUNK_VERIFICATION_FAILED: ChunkVerificationError,
}

export function errorFromReply(reply: ErrorReply): HaulError {
  const ctor = REMOTE_ERRORS[reply.code] ?? InternalError
  return new ctor(reply.message)
}

export function checkOwned(buf: unknown, what: string): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new InvalidArgumentError(`${what} must be a Uint8Array`)
  if (!(buf.buffer instanceof ArrayBuffer) || buf.buffer.detached) {
    throw new InvalidArgumentError(`${what} is detached or not backed by a transferable ArrayBuffer`)
  }
  if (!ownsBuffer(buf)) {
    throw new InvalidArgumentError(
      `${what} must own its whole ArrayBuffer (byteOffset ${buf.byteOffset}, length ${buf.byteLength} of ${buf.buffer.byteLength}): moving it would detach unrelated data`,
    )
  }
}

export function checkLength(length: number, max: number, what: string): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > max) {
    throw new InvalidArgumentError(`${what} must be an integer in [0, ${max}], got ${length}`)
  }
}

/** Detaches the caller's view now and returns a view of the same memory that the pool owns. */
export function take(buf: Uint8Array): Uint8Array {
  return new Uint8Array((buf.buffer as ArrayBuffer).transfer())
}

export function splitHashes(packed: Uint8Array, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => packed.subarray(i * SHA256_BYTES, (i + 1) * SHA256_BYTES))
}
