/**
 * The main thread's side of handing work to the pool's threads: arguments checked before anything
 * moves (a buffer must own its whole ArrayBuffer, since moving a view of a shared slab would
 * detach unrelated data), buffers moved, and replies turned back into results (packed hashes
 * split, a worker's error code rebuilt as its HaulError class).
 */
import { errorClassOf, type HaulError, InvalidArgumentError } from '../errors.ts'
import { ownsBuffer } from './codecs.ts'
import { type ErrorReply, SHA256_BYTES } from './messages.ts'

/**
 * A worker's error as the class of its code, whatever the code: a thread runs this very version,
 * so every code it sends is one of ours, and a task's file errors (NO_SPACE, PERMISSION_DENIED,
 * TOO_MANY_OPEN_FILES, DESTINATION_INVALID, FILE_TOO_LARGE from cut-files.ts) are the user's to
 * act on as much as the main thread's own.
 */
export function errorFromReply(reply: ErrorReply): HaulError {
  return new (errorClassOf(reply.code))(reply.message)
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
