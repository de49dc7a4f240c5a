/**
 * Frame layout of the haul transfer protocol. Every field of every message is listed here;
 * ./encoder.ts writes exactly this and ./decoder.ts accepts exactly this.
 *
 * A frame on the stream:
 *
 * ```
 *  0      4      5
 *  +------+------+-------------------------+
 *  | len  | type | body (len - 1 bytes)    |
 *  +------+------+-------------------------+
 * ```
 * - `len`  u32 big-endian: the number of bytes after this field (type byte + body). At least 1,
 *          at most the receiver's `maxFrame`, and at most the limit of its type for the side that
 *          reads it (`frameLimit`, below). Checked before any of the body is buffered: `len`
 *          against `maxFrame` as soon as its 4 bytes are in, against its type's limit as soon as
 *          the type byte is.
 * - `type` u8: a number from `MESSAGE_TYPES` (./messages.ts). Unknown → UnknownMessageTypeError.
 * - body: the message's fields in the order below, integers big-endian. A body must be exactly
 *   as long as its fields say: short bodies, trailing bytes and counts that exceed the remaining
 *   bytes are ProtocolViolationError.
 *
 * Field types: `u8`, `u16`, `u32` unsigned big-endian; `u64` unsigned big-endian whose value must
 * be ≤ 2^53 − 1 (it becomes a JS number); `[n]` n raw bytes. `rid` is a u32 request id, never 0
 * except in `error` (0 = the whole connection).
 *
 * hello (0x01) — both sides, first frame
 *   0  u16  version      must equal PROTOCOL_VERSION, read first: any other → UnsupportedVersionError
 *                         and nothing after it is parsed (a later version may change the rest)
 *   2  u32  maxFrame     largest `len` the sender accepts, ≥ MIN_MAX_FRAME
 *   6  u8   n            number of codec ids
 *   7  [n]  codecs       CODEC_IDS (src/types.ts), preference order, no duplicates; ids this
 *                         version does not know are dropped (a newer peer may offer more)
 *
 * Requests (get-header, get-pages, get-chunks, get-have) may end with one optional field:
 *   [16] secret          SECRET_BYTES, the ticket's capability for this peer (messages.ts,
 *                         "Access"): present exactly when 16 bytes are left after the fields
 *                         listed for the type; any other number of bytes left is a violation
 *
 * get-header (0x10)
 *   0  u32  rid
 *   4  [32] cid
 *  36  [16] secret       optional
 *
 * header (0x11)
 *   0  u32  rid
 *   4  u16  n            ≤ MAX_HEADER_BYTES (256)
 *   6  [n]  header       opaque encoded descriptor header
 *
 * get-pages (0x12)
 *   0  u32  rid
 *   4  [32] cid
 *  36  u64  firstPage
 *  44  u32  count        ≥ 1
 *  48  [16] secret       optional
 *
 * page (0x13) — one per page asked for, then `end`
 *   0  u32  rid
 *   4  u64  pageIndex
 *  12  u8   p            ≤ MAX_PROOF_HASHES (64)
 *  13  [32 × p] proof    Merkle proof nodes
 *  13+32p  u32  e        length of the entries
 *  17+32p  [e]  entries  opaque encoded leaf entries
 *
 * get-chunks (0x14)
 *   0  u32  rid
 *   4  [32] cid
 *  36  u8   r            1 ≤ r ≤ MAX_RANGES (64)
 *  37  r × { u64 start, u64 end }   half-open [start, end), start < end,
 *                                    each start ≥ the previous end (ascending, disjoint)
 *  37+16r  [16] secret   optional
 *
 * chunk (0x15) — one per chunk asked for, then `end`
 *   0  u32  rid
 *   4  u64  index
 *  12  u8   codec        CODEC_IDS; unknown → CodecUnsupportedError
 *  13  u32  rawLength    decoded length; for codec 'none' must equal the payload length
 *  17  [len − 18] payload   the rest of the frame (no length field of its own): the encoder
 *                            hands it to the stream as its own buffer, never copied
 *
 * get-have (0x18)
 *   0  u32  rid
 *   4  [32] cid
 *  36  u64  start        first chunk asked about
 *  44  u32  count        1 ≤ count ≤ MAX_HAVE_REQUEST_BITS (2^24)
 *  48  [16] secret       optional
 *
 * have (0x19) — one or more per get-have, then `end`
 *   0  u32  rid
 *   4  u8   flags        bit 0 HAVE_COMPLETE (holds every chunk); other bits must be 0
 *   5  u64  start
 *  13  u32  count        0 when complete; else 1 ≤ count ≤ MAX_HAVE_BITS (2^18)
 *  17  [⌈count/8⌉] bits  chunk start+i = bit (i & 7) of byte (i >> 3); unused high bits of the
 *                         last byte must be 0; the body must end exactly after them
 *
 * end (0x20), cancel (0x21)
 *   0  u32  rid
 *
 * error (0x22)
 *   0  u32  rid          0 = connection-level
 *   4  u16  code         WIRE_CODES (src/errors.ts); decoded as a number, known or not; a
 *                         receiver reports a code that is not a peer's to send, unknown ones
 *                         included, as PEER_FAILED naming it (errorFromWire)
 *   6  u16  n            ≤ MAX_ERROR_MESSAGE_BYTES (1024)
 *   8  [n]  message      UTF-8; invalid UTF-8 → ProtocolViolationError
 */

import { MiB } from '../types.ts'
import { MAX_ERROR_MESSAGE_BYTES, MAX_RANGES, type MessageType, SECRET_BYTES } from './messages.ts'

/** Bytes of the length prefix. */
export const LENGTH_BYTES = 4
/** Bytes of the type field. */
export const TYPE_BYTES = 1
/** Length prefix + type: the bytes of every frame before its body. */
export const FRAME_HEADER_BYTES = LENGTH_BYTES + TYPE_BYTES

/**
 * Default largest `len` a decoder accepts and an encoder produces: an 8 MiB chunk sent with
 * codec 'none' plus its 18 header bytes, with room. Chunks of 1–4 MiB (the usual sizes) fit
 * twice over; a peer that announces a smaller `maxFrame` in hello cannot receive bigger chunks.
 */
export const DEFAULT_MAX_FRAME = 8 * MiB + 64
/**
 * Smallest `maxFrame` a peer may announce or a decoder may be built with: every message except
 * `chunk` and a big `page` fits, so the control traffic always gets through.
 */
export const MIN_MAX_FRAME = 64 * 1024
/** `len` is a u32. */
export const MAX_FRAME_LIMIT = 0xffff_ffff

/** Fixed body sizes (after the type byte). */
export const HELLO_FIXED_BYTES = 7
export const GET_HEADER_BYTES = 36
export const HEADER_FIXED_BYTES = 6
export const GET_PAGES_BYTES = 48
export const PAGE_FIXED_BYTES = 17
export const GET_CHUNKS_FIXED_BYTES = 37
export const RANGE_BYTES = 16
/** Everything of a chunk body before its payload. */
export const CHUNK_HEADER_BYTES = 17
export const REQUEST_ID_BYTES = 4
export const GET_HAVE_BYTES = 48
export const HAVE_FIXED_BYTES = 17
export const ERROR_FIXED_BYTES = 8

/** Largest high word of a u64 that keeps the value ≤ 2^53 − 1. */
export const U64_MAX_SAFE_HIGH = 0x1f_ffff
export const TWO_POW_32 = 2 ** 32

/**
 * Which half of the protocol a decoder reads.
 * - `serving`: what a receiver sends to a server (hello, requests, cancel, error). Every one of
 *   these is small, so each type's limit is the largest frame a correct peer can build; a frame
 *   announced above it is refused at its type byte, before a byte of its body is held.
 * - `receiving`: what a server sends back. `chunk` and `page` frames run up to `maxFrame`; every
 *   other type up to MIN_MAX_FRAME (the protocol guarantees they fit the smallest frame limit).
 */
export type FrameSide = 'serving' | 'receiving'
export const FRAME_SIDES: readonly FrameSide[] = ['serving', 'receiving']

/**
 * Room in the `serving` limit of `hello` for a later protocol version's longer hello: its version
 * field must still be read so that the peer is refused with UNSUPPORTED_VERSION, not a size error.
 */
export const HELLO_LIMIT = 1024

/**
 * Largest `len` (type byte + body) a server accepts per message type; 0: the type never travels
 * to a server, refused with PROTOCOL_VIOLATION at its type byte.
 *
 * | type       | limit | from                                                         |
 * |------------|-------|--------------------------------------------------------------|
 * | hello      | 1024  | HELLO_LIMIT (a version-1 hello is at most 1 + 7 + 255 = 263)  |
 * | get-header | 53    | 1 + GET_HEADER_BYTES + SECRET_BYTES                          |
 * | get-pages  | 65    | 1 + GET_PAGES_BYTES + SECRET_BYTES                           |
 * | get-chunks | 1078  | 1 + GET_CHUNKS_FIXED_BYTES + MAX_RANGES × RANGE_BYTES + 16    |
 * | get-have   | 65    | 1 + GET_HAVE_BYTES + SECRET_BYTES                            |
 * | cancel     | 5     | 1 + REQUEST_ID_BYTES                                         |
 * | error      | 1033  | 1 + ERROR_FIXED_BYTES + MAX_ERROR_MESSAGE_BYTES              |
 * | header, page, chunk, have, end | 0 | replies: a server never reads them            |
 */
export const SERVING_FRAME_LIMITS: Readonly<Record<MessageType, number>> = Object.freeze({
  hello: HELLO_LIMIT,
  'get-header': TYPE_BYTES + GET_HEADER_BYTES + SECRET_BYTES,
  'get-pages': TYPE_BYTES + GET_PAGES_BYTES + SECRET_BYTES,
  'get-chunks': TYPE_BYTES + GET_CHUNKS_FIXED_BYTES + MAX_RANGES * RANGE_BYTES + SECRET_BYTES,
  'get-have': TYPE_BYTES + GET_HAVE_BYTES + SECRET_BYTES,
  cancel: TYPE_BYTES + REQUEST_ID_BYTES,
  error: TYPE_BYTES + ERROR_FIXED_BYTES + MAX_ERROR_MESSAGE_BYTES,
  header: 0,
  page: 0,
  chunk: 0,
  have: 0,
  end: 0,
})

/** The largest `len` a `side` decoder with frame limit `maxFrame` accepts for `type` (0: never). */
export function frameLimit(side: FrameSide, type: MessageType, maxFrame: number): number {
  if (side === 'serving') return Math.min(SERVING_FRAME_LIMITS[type], maxFrame)
  return type === 'chunk' || type === 'page' ? maxFrame : Math.min(MIN_MAX_FRAME, maxFrame)
}
