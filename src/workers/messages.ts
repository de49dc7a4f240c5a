/**
 * What crosses the thread boundary between WorkerPool (main thread) and worker.ts.
 *
 * Every request is tied to its reply type through {@link ReplyFor}; a worker answers either that
 * reply or an {@link ErrorReply} (errors are sent as data, because structured clone drops the
 * class of a thrown error). Buffers named in a request or reply are moved with a transfer list,
 * never copied: each one owns its whole ArrayBuffer.
 */
import type { CdcSizes } from '../chunking/params.ts'
import type { ErrorCode } from '../errors.ts'
import type { Codec } from '../types.ts'
import type { CodecPolicy } from './codecs.ts'

export const SHA256_BYTES = 32

/** CDC sizes, checked by `verifyCdcSizes` in src/chunking/params.ts. */
export type CdcParams = CdcSizes

/** SHA-256 of `bufs[i].subarray(0, lengths[i])` for each i. */
export interface HashRequest {
  readonly kind: 'hash'
  readonly bufs: Uint8Array[]
  readonly lengths: number[]
}
export interface HashReply {
  readonly kind: 'hash'
  /** `bufs.length` digests back to back. */
  readonly hashes: Uint8Array
  readonly bufs: Uint8Array[]
}

/** Hash (when `hash`) then compress `buf.subarray(0, length)` per `policy`. */
export interface EncodeRequest {
  readonly kind: 'encode'
  readonly buf: Uint8Array
  readonly length: number
  readonly policy: CodecPolicy
  /** zstd's compression level (1 unless the sender's codec choice says otherwise). */
  readonly zstdLevel?: number | undefined
  readonly hash: boolean
}
export interface EncodeReply {
  readonly kind: 'encode'
  /** SHA-256 of the plain bytes; null when the request did not ask for it. */
  readonly hash: Uint8Array | null
  readonly codec: Codec
  /** The compressed bytes; null when `codec` is none (the payload is then `buf` itself). */
  readonly payload: Uint8Array | null
  readonly buf: Uint8Array
}

/** Decompress to exactly `rawLength` bytes and check their SHA-256 against `expectedHash`. */
export interface DecodeRequest {
  readonly kind: 'decode'
  readonly payload: Uint8Array
  readonly codec: Codec
  readonly rawLength: number
  readonly expectedHash: Uint8Array
  /** Recycled buffer to decompress into (the pool sends one for lz4 only). */
  readonly into: Uint8Array | null
}
export interface DecodeReply {
  readonly kind: 'decode'
  /**
   * The verified bytes at offset 0 of the buffer moved back (`payload`, `into`, a new buffer or
   * a copy), which may be longer than them.
   */
  readonly data: Uint8Array
  /**
   * The payload's buffer when it is not `data` (a compressed chunk), moved back. Dropped in the
   * worker it would wait for that thread's next full GC, which a worker doing little JS seldom
   * runs: 1 GiB of zstd chunks left ~100 MB of them behind on the receiver.
   */
  readonly spare: Uint8Array | null
}

/** Content-defined cut points in `buf.subarray(0, length)`, and the SHA-256 of each chunk. */
export interface CdcRequest {
  readonly kind: 'cdc'
  readonly buf: Uint8Array
  readonly length: number
  readonly params: CdcParams
  readonly isFinal: boolean
  /** False: only find the cuts (the caller hashes the chunks elsewhere, in parallel). */
  readonly hash: boolean
}
export interface CdcReply {
  readonly kind: 'cdc'
  readonly lengths: number[]
  /** `lengths.length` digests back to back. */
  readonly hashes: Uint8Array
  readonly consumed: number
  readonly buf: Uint8Array
}

/** Files (and links) to cut out of a collection's pack into its staging tree (src/workers/cut-files.ts). */
export interface CutRequest {
  readonly kind: 'cut'
  /** The pack and the tree, as paths through the pinned destination folder. */
  readonly pack: string
  /** A descriptor of the pack opened by the caller (kept open): used instead of opening `pack`. */
  readonly packFd?: number
  readonly tree: string
  /** In pack order; their bytes are one range of the pack, ending at `end`. */
  readonly files: ReadonlyArray<{ path: string; offset: number; size: number; mode: number }>
  readonly end: number
  readonly links: ReadonlyArray<{ path: string; target: string }>
  /**
   * The real paths of `pack` and `tree`, for messages: those above go through the pinned folder's
   * `/proc/self/fd/<n>`, which means nothing to a user (and names another folder once closed).
   */
  readonly shownPack?: string
  readonly shownTree?: string
  /** fdatasync each file before closing it. */
  readonly sync?: boolean
}
export interface CutReply {
  readonly kind: 'cut'
}

export interface ErrorReply {
  readonly kind: 'error'
  readonly code: ErrorCode
  readonly message: string
}

export type WorkerRequest = HashRequest | EncodeRequest | DecodeRequest | CdcRequest | CutRequest

export interface ReplyFor {
  hash: HashReply
  encode: EncodeReply
  decode: DecodeReply
  cdc: CdcReply
  cut: CutReply
}

export type WorkerReply<R extends WorkerRequest> = ReplyFor[R['kind']] | ErrorReply
export type AnyReply = ReplyFor[keyof ReplyFor] | ErrorReply
