/**
 * The haul transfer protocol: the messages two peers exchange on one stream.
 *
 * Goals
 * - Pull, not push: the receiver asks for windows of work (a descriptor header, pages of
 *   leaves, ranges of chunks); the sender answers only what was asked and never volunteers bytes.
 *   A receiver therefore bounds its own memory by bounding what it asks for.
 * - Pipelining: every request carries a `requestId` chosen by the asker, so many requests can be
 *   in flight on one stream and answered in any interleaving; `end` closes a multi-frame answer,
 *   `cancel` withdraws a request, `error` fails one request (or the connection, with id 0).
 * - Hostile input: every length on the wire is checked against a fixed limit or the remaining
 *   bytes of its frame before anything is allocated; a frame's length prefix is checked against
 *   the receiver's `maxFrame` before its body is buffered.
 * - Stable wire ids: message-type numbers ({@link MESSAGE_TYPES}), codec ids (`CODEC_IDS` in
 *   src/types.ts) and error codes (`WIRE_CODES` in src/errors.ts) are never renumbered, only added.
 *
 * Non-goals
 * - Knowing files, peers, streams or libp2p: this module turns messages into bytes and back.
 * - Verifying content: headers, leaf pages and chunk payloads are opaque bytes here; the
 *   descriptor and Merkle code verify them against the root.
 * - Flow control and request scheduling: how many requests to keep in flight, and when to wait
 *   for `drain`, belong to the network layer.
 * - Negotiating several versions: a peer speaks exactly {@link PROTOCOL_VERSION}; a `hello` with
 *   another version fails with `UnsupportedVersionError`.
 *
 * Exchange on a stream: both sides send `hello` first. Then
 *   get-header → header | error
 *   get-pages  → page × count, end | error
 *   get-chunks → chunk × (chunks in ranges), end | error
 *   get-have   → have × n, end | error   (which chunks the peer holds: a full seeder answers one
 *                 `have` flagged complete; a partial seeder a bitmap of the range asked for)
 * and either side may send `cancel { requestId }` (asker) or `error` (answerer) at any time.
 *
 * Access: every request may end with a `secret` ({@link SECRET_BYTES}), the capability the
 * provider's ticket carries (src/ticket/multi-ticket.ts). Content published with secrets is
 * answered only to a request presenting one of them; without it, or with a wrong one, the
 * answer is the one for content the peer does not publish (CONTENT_NOT_FOUND). The secret rides
 * on each request rather than once per stream, so a session reused across transfers
 * (src/session/session-pool.ts) and pipelined requests need no state on either side.
 * Byte layouts of every message are documented in ./frame.ts.
 */

import type { Codec } from '../types.ts'

/** libp2p protocol id of the transfer protocol. */
export const PROTOCOL_ID = '/haul/transfer/1.0.0'
/** Version carried in `hello`; a peer with another version is refused. */
export const PROTOCOL_VERSION = 1

/**
 * Message type numbers, the `u8` after every frame's length prefix. Part of the protocol:
 * never renumber one, only add (and take new numbers from the reserved ranges below).
 */
export const MESSAGE_TYPES = {
  hello: 0x01,
  'get-header': 0x10,
  header: 0x11,
  'get-pages': 0x12,
  page: 0x13,
  'get-chunks': 0x14,
  chunk: 0x15,
  'get-have': 0x18,
  have: 0x19,
  end: 0x20,
  cancel: 0x21,
  error: 0x22,
} as const

export type MessageType = keyof typeof MESSAGE_TYPES

/**
 * Numbers kept free so the table above can grow without renumbering. A frame with any of these
 * types (or any other number not in {@link MESSAGE_TYPES}) fails with `UnknownMessageTypeError`.
 * - 0x00: never valid, so a zero-filled stream is caught at once.
 * - 0x02–0x0f: session control (ping, go-away, ...).
 * - 0x16–0x17, 0x1a–0x1f: further request/answer pairs.
 * - 0x23–0x2f: further per-request control.
 * - 0xf0–0xff: experiments; never sent by a released build.
 */
export const RESERVED_MESSAGE_TYPES: readonly (readonly [first: number, last: number])[] = [
  [0x00, 0x00],
  [0x02, 0x0f],
  [0x16, 0x17],
  [0x1a, 0x1f],
  [0x23, 0x2f],
  [0xf0, 0xff],
]

const TYPE_BY_NUMBER = new Map<number, MessageType>(
  Object.entries(MESSAGE_TYPES).map(([name, n]) => [n, name as MessageType]),
)

/** The message type of a wire number, or undefined for a number this version does not know. */
export function messageTypeFromNumber(n: number): MessageType | undefined {
  return TYPE_BY_NUMBER.get(n)
}

/** Content ids (descriptor roots) are SHA-256 digests. */
export const CID_BYTES = 32
/** A request's capability: the per-publish secret its ticket gives for its provider. */
export const SECRET_BYTES = 16
/** Every Merkle proof node is a SHA-256 digest. */
export const HASH_BYTES = 32
/** Largest encoded descriptor header a `header` message carries. */
export const MAX_HEADER_BYTES = 256
/** Most proof nodes in one `page`: enough for a tree of 2^64 leaves. */
export const MAX_PROOF_HASHES = 64
/** Most ranges in one `get-chunks`. */
export const MAX_RANGES = 64
/** Longest `error` message, in UTF-8 bytes. */
export const MAX_ERROR_MESSAGE_BYTES = 1024
/** Request ids are `u32`; 0 is reserved for connection-level errors. */
export const MAX_REQUEST_ID = 0xffff_ffff
/**
 * Most chunk bits in one `have` frame: 2^18 bits is a 32 KiB bitmap, so a `have` always fits the
 * smallest frame limit (MIN_MAX_FRAME, 64 KiB) like every other control message.
 */
export const MAX_HAVE_BITS = 2 ** 18
/** Most chunks one `get-have` may name (answered in ≤ 64 `have` frames). */
export const MAX_HAVE_REQUEST_BITS = 64 * MAX_HAVE_BITS
/** `have.flags` bit: the sender holds every chunk of the content; the frame carries no bitmap. */
export const HAVE_COMPLETE = 0x01
/** Indices and page numbers travel as `u64` but must stay exact in a JS number. */
export const MAX_INDEX = Number.MAX_SAFE_INTEGER

/** First message on a stream, from both sides. */
export interface HelloMessage {
  readonly type: 'hello'
  /** Protocol version of the sender; must equal {@link PROTOCOL_VERSION}. */
  readonly version: number
  /** Codecs the sender can decode, in preference order. Unknown ids from newer peers are dropped. */
  readonly codecs: readonly Codec[]
  /** Largest frame the sender accepts (length-prefix value), see frame.ts. */
  readonly maxFrame: number
}

export interface GetHeaderMessage {
  readonly type: 'get-header'
  readonly requestId: number
  /** Root of the wanted descriptor, {@link CID_BYTES} bytes. */
  readonly cid: Uint8Array
  /** The ticket's secret for this peer ({@link SECRET_BYTES}); absent for public content. */
  readonly secret?: Uint8Array
}

export interface HeaderMessage {
  readonly type: 'header'
  readonly requestId: number
  /** Encoded descriptor header, opaque here, at most {@link MAX_HEADER_BYTES}. */
  readonly header: Uint8Array
}

export interface GetPagesMessage {
  readonly type: 'get-pages'
  readonly requestId: number
  readonly cid: Uint8Array
  readonly firstPage: number
  /** Number of pages wanted, at least 1. */
  readonly count: number
  readonly secret?: Uint8Array
}

export interface PageMessage {
  readonly type: 'page'
  readonly requestId: number
  readonly pageIndex: number
  /** Encoded leaf entries of the page, opaque here. */
  readonly entries: Uint8Array
  /** Merkle proof of the page's subtree, each node {@link HASH_BYTES}, at most {@link MAX_PROOF_HASHES}. */
  readonly proof: readonly Uint8Array[]
}

/** Half-open range of chunk indices: `start` ≤ index < `end`. */
export interface ChunkRange {
  readonly start: number
  readonly end: number
}

export interface GetChunksMessage {
  readonly type: 'get-chunks'
  readonly requestId: number
  readonly cid: Uint8Array
  /** 1 to {@link MAX_RANGES} non-empty ranges, ascending and disjoint (adjacent is fine). */
  readonly ranges: readonly ChunkRange[]
  readonly secret?: Uint8Array
}

export interface ChunkMessage {
  readonly type: 'chunk'
  readonly requestId: number
  readonly index: number
  readonly codec: Codec
  /** Length of the chunk once decoded; compare with the leaf before allocating for it. */
  readonly rawLength: number
  /** Chunk bytes as encoded by `codec`. For 'none', `payload.length === rawLength`. */
  readonly payload: Uint8Array
}

/** Which chunks of `cid` in [start, start + count) the peer holds (verified, ready to serve). */
export interface GetHaveMessage {
  readonly type: 'get-have'
  readonly requestId: number
  readonly cid: Uint8Array
  readonly start: number
  /** 1 to {@link MAX_HAVE_REQUEST_BITS}. */
  readonly count: number
  readonly secret?: Uint8Array
}

/**
 * One run of a peer's have-bitmap. `complete`: it holds every chunk (a full seeder), and
 * `count` is 0 with an empty bitmap. Otherwise `bits` covers chunks [start, start + count),
 * 1 ≤ count ≤ {@link MAX_HAVE_BITS}: chunk `start + i` is bit `i & 7` of byte `i >> 3` (LSB
 * first); the unused high bits of the last byte are 0.
 */
export interface HaveMessage {
  readonly type: 'have'
  readonly requestId: number
  readonly complete: boolean
  readonly start: number
  readonly count: number
  readonly bits: Uint8Array
}

/** Closes a multi-frame answer (`get-pages`, `get-chunks`, `get-have`). */
export interface EndMessage {
  readonly type: 'end'
  readonly requestId: number
}

/** The asker no longer wants the answer; frames already in flight may still arrive. */
export interface CancelMessage {
  readonly type: 'cancel'
  readonly requestId: number
}

export interface ErrorMessage {
  readonly type: 'error'
  /** The failed request, or 0 when the whole connection failed. */
  readonly requestId: number
  /** Wire code from `WIRE_CODES`; codes this version does not know are kept as numbers. */
  readonly code: number
  /** Human-readable, at most {@link MAX_ERROR_MESSAGE_BYTES} UTF-8 bytes. */
  readonly message: string
}

export type TransferMessage =
  | HelloMessage
  | GetHeaderMessage
  | HeaderMessage
  | GetPagesMessage
  | PageMessage
  | GetChunksMessage
  | ChunkMessage
  | GetHaveMessage
  | HaveMessage
  | EndMessage
  | CancelMessage
  | ErrorMessage

/** Messages that open a request. */
export type RequestMessage = GetHeaderMessage | GetPagesMessage | GetChunksMessage | GetHaveMessage
