/**
 * zstd through node:zlib's native handle, with one context per thread (and per compression
 * level) reused chunk after chunk, writing into buffers the caller gives.
 *
 * Why not `zstdCompressSync` / `zstdDecompressSync`: each call builds a zlib stream object and a
 * fresh zstd context, and allocates its output. Measured per call on 772 KiB of JavaScript source
 * (zstd-1 keeps 0.395 of it): compressing took 2.57-2.80 ms one-shot against 1.85-1.93 ms with a
 * kept context, decompressing 480-503 against 450-460 µs. The stream objects, backed by native
 * handles, also outlive a scavenge: 6,000 one-shot calls left 7 MB in the old generation before a
 * full GC, so each worker's heap swung between 7 and 18 MB during a transfer. And a decoded chunk
 * lands in a recycled buffer, not a fresh one.
 *
 * The handle calls (`_handle.writeSync`, `_writeState`, `_handle.reset`) are the ones node:zlib's
 * own synchronous path makes (lib/zlib.js, processChunkSync). They are checked once per thread;
 * where they are missing, the one-shot functions do the work (slower; frames that decode alike).
 */
import zlib from 'node:zlib'

/** The part of a node:zlib stream object used here. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void
  reset(): void
  close(): void
  onerror: (message: string, errno: number, code?: string) => void
}
interface ZstdEngine {
  _handle?: ZlibHandle
  _writeState?: Uint32Array
}

/**
 * A kept zstd context. `run` feeds `input` from `inOff` with ZSTD_e_end into `out` and returns
 * [bytes written, input bytes left]. A frame that ended leaves the context ready for the next
 * one. `reset` drops a frame left unfinished, and with it the parameters given at creation
 * (node:zlib resets session and parameters): only the decoder, which has none, is reset; an
 * encoder whose frame did not finish is closed instead, as is any context after an error.
 */
interface Context {
  run(input: Uint8Array, inOff: number, out: Uint8Array, outOff: number, outLen: number): [number, number]
  reset(): void
  close(): void
}

/** Compression levels kept at once per thread (codec-choice.ts climbs a ladder of three). */
const MAX_COMPRESS_CONTEXTS = 4

function open(engine: ZstdEngine): Context | undefined {
  const handle = engine._handle
  const state = engine._writeState
  if (handle === undefined || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function') {
    return undefined
  }
  if (!(state instanceof Uint32Array) || state.length < 2) return undefined
  let failure: Error | undefined
  // Synchronous in writeSync; without this, zlib would destroy the stream object on a corrupt frame.
  handle.onerror = (message, errno, code) => {
    failure = Object.assign(new Error(message), { errno, code })
  }
  return {
    run(input, inOff, out, outOff, outLen) {
      failure = undefined
      handle.writeSync(zlib.constants.ZSTD_e_end, input, inOff, input.length - inOff, out, outOff, outLen)
      const outLeft = state[0]!
      const inLeft = state[1]!
      if (failure !== undefined) {
        const err = failure
        failure = undefined
        throw err
      }
      return [outLen - outLeft, inLeft]
    },
    reset() {
      handle.reset()
    },
    close() {
      handle.close()
    },
  }
}

/** This thread's decoder: null until first asked for, undefined where the handle is missing. */
let decoder: Context | undefined | null = null
const encoders = new Map<number, Context>()
/** A few bytes to see whether a frame that filled its output had more to give. */
const PROBE = new Uint8Array(64)

function decoderContext(): Context | undefined {
  if (decoder === null) decoder = open(new zlib.ZstdDecompress() as unknown as ZstdEngine)
  return decoder
}

function encoderContext(level: number): Context | undefined {
  let ctx = encoders.get(level)
  if (ctx !== undefined) {
    encoders.delete(level)
    encoders.set(level, ctx)
    return ctx
  }
  const engine = new zlib.ZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } })
  ctx = open(engine as unknown as ZstdEngine)
  if (ctx === undefined) return undefined
  if (encoders.size >= MAX_COMPRESS_CONTEXTS) {
    const [oldest, old] = encoders.entries().next().value!
    encoders.delete(oldest)
    old.close()
  }
  encoders.set(level, ctx)
  return ctx
}

/** Why a decode failed, for DecompressionError's message. */
export class ZstdOutputError extends Error {}

/**
 * Compresses `plain` at `level` into `out` (at least zstdBound(plain.length) long) and returns
 * the compressed length. Throws ZstdOutputError if it did not fit.
 */
export function zstdCompressInto(plain: Uint8Array, level: number, out: Uint8Array): number {
  const ctx = encoderContext(level)
  if (ctx === undefined) return zstdCompressOneShot(plain, level, out)
  let n: number
  let inLeft: number
  try {
    ;[n, inLeft] = ctx.run(plain, 0, out, 0, out.length)
    if (inLeft !== 0 || n === out.length) {
      throw new ZstdOutputError(`compressed output does not fit ${out.length} bytes`)
    }
  } catch (err) {
    // The frame may be unfinished: this context is not used again.
    encoders.delete(level)
    ctx.close()
    throw err
  }
  return n
}

/**
 * Decompresses `payload` into `out.subarray(0, rawLength)` and returns the decoded length, never
 * writing past `rawLength` whatever the payload claims. Throws ZstdOutputError when the payload
 * holds more than `rawLength` bytes, or zlib's error when it is corrupt. A payload that ends early
 * returns fewer bytes than `rawLength`.
 */
export function zstdDecompressInto(payload: Uint8Array, rawLength: number, out: Uint8Array): number {
  const ctx = decoderContext()
  if (ctx === undefined) return zstdDecompressOneShot(payload, rawLength, out)
  let n: number
  try {
    let inLeft: number
    ;[n, inLeft] = ctx.run(payload, 0, out, 0, rawLength)
    // Full: anything more, buffered in the context or left in the payload, is too much.
    if (n === rawLength && ctx.run(payload, payload.length - inLeft, PROBE, 0, PROBE.length)[0] > 0) {
      ctx.reset()
      throw new ZstdOutputError(`inflates past ${rawLength} bytes`)
    }
  } catch (err) {
    if (!(err instanceof ZstdOutputError)) {
      decoder = null
      ctx.close()
    }
    throw err
  }
  ctx.reset()
  return n
}

/** zstdCompressInto where node:zlib's handle is missing: one call, its result copied (same contract). */
export function zstdCompressOneShot(plain: Uint8Array, level: number, out: Uint8Array): number {
  const r = zlib.zstdCompressSync(plain, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } })
  if (r.length > out.length)
    throw new ZstdOutputError(`${r.length} compressed bytes do not fit ${out.length}`)
  out.set(r)
  return r.length
}

/** zstdDecompressInto where node:zlib's handle is missing: one bounded call (same contract). */
export function zstdDecompressOneShot(payload: Uint8Array, rawLength: number, out: Uint8Array): number {
  let r: Buffer
  try {
    r = zlib.zstdDecompressSync(payload, { maxOutputLength: Math.max(1, rawLength) })
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_BUFFER_TOO_LARGE') throw err
    throw new ZstdOutputError(`inflates past ${rawLength} bytes`, { cause: err })
  }
  if (r.length > rawLength) throw new ZstdOutputError(`inflates past ${rawLength} bytes`)
  out.set(r)
  return r.length
}
