/**
 * What a WorkerPool is asked with: its own options (thread count and queue, filled in and checked
 * by verifyWorkerPoolOptions before any thread starts) and each call's options (signal, length,
 * recycled decode buffers, encode settings).
 */
import { engineDefaults } from '../engine/config/resolve.ts'
import { MAX_WORKERS } from '../engine/config/table.ts'
import { ConfigInvalidError } from '../errors.ts'

export interface WorkerPoolOptions {
  /** Worker threads. @default the engine's `workers` default */
  threads?: number
  /** Tasks accepted beyond the `threads` running ones; later callers wait for a slot. @default threads * 4 */
  maxQueue?: number
}

export const defaultWorkerPoolOptions: Required<WorkerPoolOptions> = {
  threads: engineDefaults.workers,
  maxQueue: engineDefaults.workers * 4,
}

const MAX_QUEUE = 65_536

/** Fills defaults (maxQueue follows the chosen thread count) and checks ranges. */
export function verifyWorkerPoolOptions(opts: WorkerPoolOptions = {}): Required<WorkerPoolOptions> {
  const threads = opts.threads ?? defaultWorkerPoolOptions.threads
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WORKERS) {
    throw new ConfigInvalidError(`threads must be an integer in [1, ${MAX_WORKERS}], got ${threads}`)
  }
  const maxQueue = opts.maxQueue ?? threads * 4
  if (!Number.isInteger(maxQueue) || maxQueue < 0 || maxQueue > MAX_QUEUE) {
    throw new ConfigInvalidError(`maxQueue must be an integer in [0, ${MAX_QUEUE}], got ${maxQueue}`)
  }
  return { threads, maxQueue }
}

export interface TaskOptions {
  signal?: AbortSignal
}
export interface LengthOptions extends TaskOptions {
  /** Only `buf.subarray(0, length)` is the chunk (recycled buffers are often longer). @default buf.length */
  length?: number
}
export interface DecodeOptions extends TaskOptions {
  /**
   * Recycled output buffer (length >= rawLength, owns its ArrayBuffer), used for lz4 and zstd
   * chunks: moved in, and the result is a view of it. lz4 decoded 1.2-2.8x faster into a recycled
   * buffer than into a new one (bench/codec.bench.ts), and zstd leaves no 1 MiB for the collector
   * per chunk (zstd.ts). `none` returns the payload itself, so there `into` is left untouched (not
   * detached): check `into.byteLength` to see whether it was taken.
   */
  into?: Uint8Array
  /**
   * Receives the payload's buffer back when the result is not in it (a compressed chunk), so
   * the caller can reuse it. Without it, the buffer is left to the garbage collector.
   */
  onSpare?: (payload: Uint8Array) => void
}

export interface EncodeOptions extends LengthOptions {
  /** Also SHA-256 the plain bytes (`hash` in the result). @default true */
  hash?: boolean
  /** zstd's level, 1 to 19 (src/serve/codec-choice.ts). @default 1 */
  zstdLevel?: number | undefined
}
