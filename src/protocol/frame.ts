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
 *          at most the receiver's `maxFrame`. Checked before any of the body is buffered.
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
 * get-header (0x10)
 *   0  u32  rid
 *   4  [32] cid
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
 *   4  u16  code         WIRE_CODES (src/errors.ts); unknown codes are kept as numbers
 *   6  u16  n            ≤ MAX_ERROR_MESSAGE_BYTES (1024)
 *   8  [n]  message      UTF-8; invalid UTF-8 → ProtocolViolationError
 */

import { MiB } from '../types.ts'

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
