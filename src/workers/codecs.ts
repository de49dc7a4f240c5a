/**
 * Per-chunk compression. Pure functions with no pool state: they run on any thread (the worker
 * pool calls them, tests and benches call them directly).
 *
 * Everything that decompresses treats the payload as hostile: the output is bounded by the
 * expected plain length before or while it is allocated, and must come out exactly that long.
 */
import { MAX_CHUNK_SIZE } from '../chunking/params.ts'
import { CodecUnsupportedError, DecompressionError, InvalidArgumentError } from '../errors.ts'
import type { Codec } from '../types.ts'
import { assertNever } from '../util/never.ts'
import { LZ4_HEADER_BYTES, lz4Bound, lz4Compress, lz4CompressedLength, lz4DecompressInto } from './lz4.ts'
import { ZstdOutputError, zstdCompressInto, zstdDecompressInto } from './zstd.ts'

/**
 * How the sender picks a chunk's codec.
 * - `none`, `lz4`, `zstd`: that codec, unless it does not pay (see {@link MAX_KEPT_RATIO}).
 * - `auto`: test-compress {@link AUTO_PROBE_BYTES} from the middle of the chunk with lz4; if that
 *   sample does not shrink by 10%, send `none` without touching the rest; else compress the whole
 *   chunk with zstd level 1 (and still apply the 10% rule).
 *
 * Why (bench/codec.bench.ts, 1 MiB chunks, medians of interleaved rounds on this shared 2-core
 * machine, so +-30%): on incompressible data the probe costs ~1/20 of a SHA-256 pass where a full
 * lz4 or zstd pass costs ~1x. On compressible data zstd-1 compressed about as fast as lz4-wasm
 * (JS source 293 vs 307 MB/s, word salad 143 vs 133) and much smaller (0.195 vs 0.315 of plain on
 * JS source, 0.42 vs 0.67 on word salad): fewer bytes to encrypt and send. lz4 decompresses ~1.8x
 * faster (1115 vs 620 MB/s on source), so explicit `lz4` remains for CPU-starved receivers on fast
 * links. The lz4 probe can call a chunk that zstd alone would shrink by just over 10% incompressible;
 * those chunks gain little anyway.
 */
export type CodecPolicy = 'none' | 'lz4' | 'zstd' | 'auto'
export const CODEC_POLICIES: readonly CodecPolicy[] = ['none', 'lz4', 'zstd', 'auto']

/** A compressed chunk is kept only if it is at most this fraction of the plain size (shrinks >= 10%). */
export const MAX_KEPT_RATIO = 0.9
/** Bytes of the chunk the `auto` policy test-compresses before deciding. */
export const AUTO_PROBE_BYTES = 16 * 1024
/**
 * Largest plain chunk these functions accept (the largest any chunking produces). Bounds every
 * allocation a hostile payload can cause (lz4-wasm's memory grows to the largest chunk seen and
 * never shrinks).
 */
export const MAX_RAW_LENGTH = MAX_CHUNK_SIZE

const ZSTD_LEVEL = 1
const LZ4_MAX_EXPANSION = 255
/** zstd never needs more than ZSTD_COMPRESSBOUND; the slack covers frame variations of other encoders. */
const ZSTD_SLACK = 64

export function zstdBound(n: number): number {
  const small = n < 128 * 1024 ? (128 * 1024 - n) >> 11 : 0
  return n + (n >> 8) + small + ZSTD_SLACK
}

/**
 * Where zstd compresses before the result is copied out at its exact length (one per thread,
 * grown to the largest chunk's bound): a compressed chunk is mostly far shorter than its bound,
 * and a buffer of its own can move to another thread and be freed alone once sent.
 */
let zstdScratch = new Uint8Array(0)

/** True when `u8` spans its whole ArrayBuffer, the condition for moving it to another thread. */
export function ownsBuffer(u8: Uint8Array): boolean {
  return u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength
}

/**
 * `u8` itself when it owns its ArrayBuffer, else a plain Uint8Array copy that does (not
 * `u8.slice()`: on a Buffer that is a view of the same memory).
 */
export function owned(u8: Uint8Array): Uint8Array {
  if (ownsBuffer(u8)) return u8
  const copy = new Uint8Array(u8.length)
  copy.set(u8)
  return copy
}

/** A codec name outside `Codec` (from a cast or a JavaScript caller; wire ids are mapped in the protocol decoder). */
function unknownCodec(codec: unknown): CodecUnsupportedError {
  return new CodecUnsupportedError(`unknown codec ${String(codec)}`)
}

function checkRawLength(rawLength: number): void {
  if (!Number.isSafeInteger(rawLength) || rawLength < 0 || rawLength > MAX_RAW_LENGTH) {
    throw new InvalidArgumentError(`rawLength must be an integer in [0, ${MAX_RAW_LENGTH}], got ${rawLength}`)
  }
}

/**
 * Compresses `plain` with `codec`. `none` returns `plain` itself; the others return a new buffer
 * exactly as long as its ArrayBuffer (so it can be moved between threads, and freed alone).
 */
export function compress(codec: Codec, plain: Uint8Array, zstdLevel = ZSTD_LEVEL): Uint8Array {
  if (plain.length > MAX_RAW_LENGTH) {
    throw new InvalidArgumentError(`chunk of ${plain.length} bytes exceeds ${MAX_RAW_LENGTH}`)
  }
  switch (codec) {
    case 'none':
      return plain
    case 'lz4':
      return lz4Compress(plain)
    case 'zstd': {
      const bound = zstdBound(plain.length)
      if (zstdScratch.length < bound) zstdScratch = new Uint8Array(bound)
      return zstdScratch.slice(0, zstdCompressInto(plain, zstdLevel, zstdScratch.subarray(0, bound)))
    }
    default:
      assertNever(codec, unknownCodec)
  }
}

/**
 * Decompresses `payload` to exactly `rawLength` bytes, or throws DecompressionError (corrupt,
 * truncated, too long or too short) / CodecUnsupportedError. Never allocates more than about
 * `rawLength` for the output, whatever the payload claims.
 *
 * `into` (optional, length >= rawLength): lz4 and zstd write the output there (no allocation)
 * and return `into.subarray(0, rawLength)`; `none` ignores it and returns `payload`. Without
 * `into`, the result is a new buffer exactly `rawLength` long.
 */
export function decompress(
  codec: Codec,
  payload: Uint8Array,
  rawLength: number,
  into?: Uint8Array,
): Uint8Array {
  checkRawLength(rawLength)
  if (into !== undefined && into.length < rawLength) {
    throw new InvalidArgumentError(`into holds ${into.length} bytes, rawLength is ${rawLength}`)
  }
  switch (codec) {
    case 'none':
      if (payload.length !== rawLength) {
        throw new DecompressionError(`uncompressed payload is ${payload.length} bytes, expected ${rawLength}`)
      }
      return payload
    case 'lz4':
      return decompressLz4(payload, rawLength, into)
    case 'zstd':
      return decompressZstd(payload, rawLength, into)
    default:
      assertNever(codec, unknownCodec)
  }
}

function decompressLz4(payload: Uint8Array, rawLength: number, into?: Uint8Array): Uint8Array {
  // An lz4 sequence byte expands to at most 255 bytes; a valid encoder never exceeds lz4Bound.
  const body = payload.length - LZ4_HEADER_BYTES
  if (body < 1 || payload.length > lz4Bound(rawLength) || rawLength > LZ4_MAX_EXPANSION * body + 64) {
    throw new DecompressionError(`lz4 payload of ${payload.length} bytes cannot hold ${rawLength} bytes`)
  }
  const claimed = new DataView(payload.buffer, payload.byteOffset, LZ4_HEADER_BYTES).getUint32(0, true)
  // lz4_flex allocates what the header claims: check it before the wasm sees it.
  if (claimed !== rawLength) {
    throw new DecompressionError(`lz4 payload claims ${claimed} bytes, expected ${rawLength}`)
  }
  const out = into ?? new Uint8Array(rawLength)
  let n: number
  try {
    n = lz4DecompressInto(payload, out)
  } catch (err) {
    throw new DecompressionError(`lz4 payload is corrupt: ${(err as Error).message}`, { cause: err })
  }
  if (n !== rawLength) throw new DecompressionError(`lz4 produced ${n} bytes, expected ${rawLength}`)
  return into === undefined ? out : out.subarray(0, rawLength)
}

function decompressZstd(payload: Uint8Array, rawLength: number, into?: Uint8Array): Uint8Array {
  if (payload.length > zstdBound(rawLength)) {
    throw new DecompressionError(`zstd payload of ${payload.length} bytes is too long for ${rawLength} bytes`)
  }
  const out = into ?? new Uint8Array(rawLength)
  let n: number
  try {
    n = zstdDecompressInto(payload, rawLength, out)
  } catch (err) {
    const why = err instanceof ZstdOutputError ? `inflates past ${rawLength} bytes` : 'is corrupt'
    throw new DecompressionError(`zstd payload ${why}: ${(err as Error).message}`, { cause: err })
  }
  if (n !== rawLength) throw new DecompressionError(`zstd produced ${n} bytes, expected ${rawLength}`)
  return into === undefined ? out : out.subarray(0, rawLength)
}

/** The bytes the `auto` policy probes: a slice from the middle, where file headers do not skew it. */
function probeSlice(plain: Uint8Array): Uint8Array {
  if (plain.length <= AUTO_PROBE_BYTES) return plain
  const start = (plain.length - AUTO_PROBE_BYTES) >>> 1
  return plain.subarray(start, start + AUTO_PROBE_BYTES)
}

function pays(compressed: number, plain: number): boolean {
  return compressed <= plain * MAX_KEPT_RATIO
}

/**
 * What the `auto` policy sends `plain` as: `none` when the lz4 probe of its middle does not
 * shrink by 10% (an empty chunk cannot shrink), else `zstd`. About 1/20 of a SHA-256 pass, so
 * the server runs it on its own thread for chunks it does not hash, sparing them a worker hop.
 */
export function autoCodec(plain: Uint8Array): 'none' | 'zstd' {
  const probe = probeSlice(plain)
  if (probe.length === 0 || !pays(lz4CompressedLength(probe) - LZ4_HEADER_BYTES, probe.length)) return 'none'
  return 'zstd'
}

/**
 * The policy a server follows for a receiver that takes chunks only in `accepted` (its hello):
 * `policy` when the receiver takes the codec it produces (`auto` produces zstd), else `none`.
 */
export function policyFor(policy: CodecPolicy, accepted: readonly Codec[]): CodecPolicy {
  const produces: Codec = policy === 'auto' ? 'zstd' : policy
  return accepted.includes(produces) ? policy : 'none'
}

/**
 * Picks the codec for one chunk per `policy` and compresses it. Returns `{ codec: 'none',
 * payload: plain }` whenever compression would not shrink the chunk by at least 10%.
 */
export function compressByPolicy(
  policy: CodecPolicy,
  plain: Uint8Array,
  zstdLevel = ZSTD_LEVEL,
): { codec: Codec; payload: Uint8Array } {
  let codec: Codec
  switch (policy) {
    case 'none':
      return { codec: 'none', payload: plain }
    case 'lz4':
    case 'zstd':
      codec = policy
      break
    case 'auto':
      codec = autoCodec(plain)
      if (codec === 'none') return { codec, payload: plain }
      break
    default:
      assertNever(policy, (p) => new InvalidArgumentError(`unknown codec policy ${String(p)}`))
  }
  const payload = compress(codec, plain, zstdLevel)
  return pays(payload.length, plain.length) ? { codec, payload } : { codec: 'none', payload: plain }
}
