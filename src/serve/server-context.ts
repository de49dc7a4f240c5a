/**
 * What serving needs from its engine: the bounds a session keeps (engine option `server`) and the
 * engine-wide parts every session shares. Sessions themselves: ./server.ts.
 */
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import type { CodecPolicy } from '../workers/codecs.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { ChunkCache } from './chunk-cache.ts'
import type { VerifySourcePolicy } from './chunk-encoder.ts'
import type { CodecChoices } from './codec-choice.ts'
import type { ContentRegistry } from './registry.ts'
import type { ServeEvents } from './serve-events.ts'
import type { ServeShares } from './serve-shares.ts'
import type { UploadSpread } from './upload-spread.ts'

/** Engine option `server`; defaults and ranges: src/engine/config/table.ts. */
export interface ServerLimits {
  /** Requests a peer may queue on one stream before it gets TOO_MANY_REQUESTS. */
  maxQueuedRequests: number
  /** Chunks one request may name. */
  maxChunksPerRequest: number
  /** Pages one request may name. */
  maxPagesPerRequest: number
  /**
   * Chunks read and encoded ahead of the one being sent, per stream. Across all of one peer's
   * streams, read-ahead also stays within that peer's share of the memory budget (serve-shares.ts).
   */
  readAhead: number
  /** Largest frame we accept and announce (only `chunk` and `page` frames come near it; requests have their own, small limits: SERVING_FRAME_LIMITS in src/protocol/frame.ts). */
  maxFrame: number
  /**
   * A request frame must be whole this long after its first byte arrived; otherwise the stream
   * gets a TIMEOUT error frame and is closed. A request is one Noise message, so a correct peer's
   * arrives whole.
   */
  frameTimeoutMs: number
  /**
   * Bytes of unfinished request frames one peer may have buffered here, across all its streams;
   * the stream that goes over gets a TOO_MANY_REQUESTS error frame and is closed. One unfinished
   * frame is at most ~1 KiB (SERVING_FRAME_LIMITS).
   */
  maxPartialBytesPerPeer: number
  /**
   * A stream with a reply waiting to be sent, whose peer takes none of its bytes for this long
   * (frames it sends meanwhile do not count), is reset and its read-ahead leases given back;
   * after a fifth of it already when its peer holds more than its share of the serving budget
   * while others wait for memory (src/serve/serve-shares.ts, serve-guard.ts).
   */
  stallTimeoutMs: number
  /**
   * Under an upload limit, least-sent chunks go first, and this bounds the extra wait of a chunk
   * this engine has sent already (upload-spread.ts). 0: first come, first served.
   */
  spreadMs: number
  /** Chunks whose send counts the upload order keeps (the least recently sent are forgotten). */
  spreadChunks: number
  /**
   * Files open at once for what the engine serves (src/storage/open-files.ts): opened on demand,
   * the least recently read closed beyond this.
   */
  maxOpenFiles: number
}

export interface ServerContext {
  registry: ContentRegistry
  pool: WorkerPool
  /** The engine budget as the serving side divides it between peers (one per engine). */
  shares: ServeShares
  /** Encoded chunks shared by every session serving the same content (one per engine). */
  cache: ChunkCache
  codec: CodecPolicy
  /** With codec `auto`: each peer's choice between plain and zstd levels, by measurement (one per engine). */
  codecChoices?: CodecChoices
  /** When chunks are hashed against their leaf before sending. @default 'auto' */
  verifySource?: VerifySourcePolicy
  limits: ServerLimits
  signal: AbortSignal
  /** Upload bandwidth: taken (payload bytes) before each chunk frame is sent, least-sent chunks first. @default unlimited */
  upload?: UploadSpread
  /** Read buffers come from here and go back once their frame is out. @default a fresh buffer per chunk */
  buffers?: BufferRecycler
  /** Where the session reports what it serves (Engine.onServe). @default nowhere */
  events?: ServeEvents
}
