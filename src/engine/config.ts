import { availableParallelism } from 'node:os'
import { maxChunkSize, verifyChunkingParams } from '../chunking/params.ts'
import { ConfigInvalidError } from '../errors.ts'
import { defaultFetchLimits, type FetchLimits } from '../fetch/fetch-context.ts'
import { defaultSwarmOptions, type SwarmOptions, verifySwarmOptions } from '../fetch/swarm-options.ts'
import { type EngineNetworkOptions, stripUndefined } from '../net/options.ts'
import {
  type BufferRecyclerOptions,
  defaultBufferRecyclerOptions,
  verifyBufferRecyclerOptions,
} from '../resources/buffer-recycler.ts'
import { defaultPriorityWeights, type Priority, verifyWeights } from '../resources/fair-queue.ts'
import { verifyGcAssistBytes } from '../resources/gc-assist.ts'
import { defaultMemoryBudgetOptions } from '../resources/memory-budget.ts'
import { type RateLimitOptions, verifyRateLimitOptions } from '../resources/rate-limit.ts'
import { VERIFY_SOURCE_POLICIES, type VerifySourcePolicy } from '../serve/chunk-encoder.ts'
import type { ServerLimits } from '../serve/server.ts'
import {
  defaultSessionPoolOptions,
  type SessionPoolOptions,
  verifySessionPoolOptions,
} from '../session/session-pool.ts'
import {
  type DirectWriteOptions,
  defaultDirectWriteOptions,
  verifyDirectWriteOptions,
} from '../storage/direct-writes.ts'
import {
  defaultJournalOptions,
  type JournalOptions,
  verifyJournalOptions,
} from '../storage/journal-options.ts'
import { defaultRetryOptions, type RetryOptions, verifyRetryOptions } from '../transfer/retry.ts'
import type { TransferTimeouts } from '../transfer/transfer-types.ts'
import type { ChunkingParams } from '../types.ts'
import { CODEC_POLICIES, type CodecPolicy } from '../workers/codecs.ts'

export interface EngineOptions {
  /** libp2p listen addresses. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** Folder for the node's identity key and published descriptors. @default none: a fresh identity each start, descriptors beside the files */
  dataDir?: string
  /** Bytes of chunk buffers the engine may hold at once, across all transfers (at least 4 chunks). @default 16 MiB */
  memoryBudget?: number
  /** Worker threads for hashing and compression. @default os.availableParallelism() */
  workers?: number
  /** How published files are cut. @default fixed 1 MiB */
  chunking?: ChunkingParams
  /** Per-chunk compression when serving. @default 'auto' */
  codec?: CodecPolicy
  /**
   * When serving hashes a chunk against its leaf before sending it: `auto` trusts a published
   * file whose stat (device, inode, size, mtime, ctime) is unchanged and hashes only files that
   * changed within 2 s of being published; `always` hashes every chunk (filesystems whose ctime
   * cannot be trusted). Either way the receiver verifies every chunk. @default 'auto'
   */
  verifySource?: VerifySourcePolicy
  timeouts?: Partial<TransferTimeouts>
  fetch?: Partial<FetchLimits>
  server?: Partial<ServerLimits>
  /** Reconnecting after transient failures. @default { maxAttempts: 10, maxAttemptsFirstContact: 3, baseDelayMs: 500, maxDelayMs: 30_000 } */
  retry?: Partial<RetryOptions>
  /** The resume journal beside `<dest>.part`. @default { enabled: true, flushBytes: 32 MiB, flushIntervalMs: 2_000, maxChunks: 2^28 } */
  journal?: Partial<JournalOptions>
  /** Bandwidth limits (token buckets, bytes per second). @default none */
  limits?: RateLimitOptions
  /** How download bandwidth divides between fetch priorities under contention. @default { high: 4, normal: 2, low: 1 } */
  priorityWeights?: Partial<Record<Priority, number>>
  /**
   * Fetches that run at once, across all peers: only these hold a stream, a part file, a
   * journal and an actor; the others wait their turn in FIFO order (in `resolving`) as plain
   * records of a few hundred bytes. Bounds the receiver's open streams and files, and what
   * they hold, whatever the number of fetches. @default 64
   */
  maxActiveTransfers?: number
  /**
   * Fetches from one peer that run at once; the others wait their turn in FIFO order
   * (in `resolving`), holding no stream, buffer or file. @default 32
   */
  maxActiveTransfersPerPeer?: number
  /** Fetches that may wait for their turn per peer; one more fails with TOO_MANY_REQUESTS. @default 100_000 */
  maxQueuedTransfersPerPeer?: number
  /**
   * Starts a full garbage collection whenever the process's ArrayBuffer memory has grown this
   * much since the last one (V8 waits for ~64 MB), lowering peak RSS at a cost in CPU; it acts
   * on the whole process. 0: off. See src/resources/gc-assist.ts. @default 0
   */
  gcAssistBytes?: number
  /**
   * Finished chunk buffers kept for reuse. Idle ones hold leases on the memory budget; while
   * the budget has no room, buffers are handed to the next taker without a lease (at most
   * `maxIdleBytes` of them, for at most 250 ms), so chunk memory is at most `memoryBudget +
   * maxIdleBytes`. @default { maxIdleBytes: 8 MiB }
   */
  buffers?: BufferRecyclerOptions
  /**
   * Verified chunks written with O_DIRECT through fixed staging memory (slots × 1 MiB), where
   * the filesystem accepts it (see src/storage/direct-writes.ts). @default { enabled: true, slots: 4 }
   */
  directWrites?: Partial<DirectWriteOptions>
  /**
   * Streams kept open after a fetch finished, for the next fetch from the same peer (it then
   * skips the stream's open, protocol negotiation and hello). @default { maxIdle: 16, idleMs: 2_000 }
   */
  sessions?: Partial<SessionPoolOptions>
  /** Multi-peer fetches and partial seeding (see README, "Multi-peer fetches"). */
  swarm?: Partial<SwarmOptions>
  /** Per-peer stream limits and connection admission of the libp2p node (see src/net/README.md). */
  network?: Partial<EngineNetworkOptions>
}

export interface EngineConfig {
  readonly listen: string[]
  readonly dataDir: string | undefined
  readonly memoryBudget: number
  readonly workers: number
  readonly chunking: ChunkingParams
  readonly codec: CodecPolicy
  readonly verifySource: VerifySourcePolicy
  readonly timeouts: TransferTimeouts
  readonly fetch: FetchLimits
  readonly server: ServerLimits
  readonly retry: RetryOptions
  readonly journal: JournalOptions
  readonly limits: RateLimitOptions
  readonly priorityWeights: Record<Priority, number>
  readonly maxActiveTransfers: number
  readonly maxActiveTransfersPerPeer: number
  readonly maxQueuedTransfersPerPeer: number
  readonly gcAssistBytes: number
  readonly network: Partial<EngineNetworkOptions>
  readonly buffers: Required<BufferRecyclerOptions>
  readonly directWrites: DirectWriteOptions
  readonly sessions: SessionPoolOptions
  readonly swarm: SwarmOptions
}

const MiB = 1024 * 1024

export const defaultTimeouts: Readonly<TransferTimeouts> = {
  connectMs: 10_000,
  idleMs: 30_000,
  requestMs: 30_000,
  closeMs: 2_000,
}

export const defaultServerLimits: Readonly<ServerLimits> = {
  maxQueuedRequests: 64,
  maxChunksPerRequest: 4096,
  maxPagesPerRequest: 16,
  readAhead: 4,
  maxFrame: 8 * MiB + 64 * 1024,
  frameTimeoutMs: 5_000,
  maxPartialBytesPerPeer: 64 * 1024,
  stallTimeoutMs: 10_000,
}

/**
 * A transfer's default fetch window: 16 MiB, but never more than half the budget, so that one
 * stalled transfer (its leases held until its stream's idle timeout) leaves the other half to
 * the rest. 8 MiB ran as fast as 16 on loopback (1 GiB, interleaved: 225–232 against 211–240 MB/s).
 */
function defaultWindowBytes(memoryBudget: number): number {
  return Math.min(defaultFetchLimits.windowBytes, Math.floor(memoryBudget / 2))
}

/** Fills defaults and checks every option; never mutates `opts`. */
export function resolveEngineConfig(opts: EngineOptions): EngineConfig {
  const memoryBudget = opts.memoryBudget ?? defaultMemoryBudgetOptions.limit
  const timeouts = { ...defaultTimeouts, ...opts.timeouts }
  const config: EngineConfig = {
    listen: [...(opts.listen ?? ['/ip4/127.0.0.1/tcp/0'])],
    dataDir: opts.dataDir,
    memoryBudget,
    workers: opts.workers ?? Math.max(1, availableParallelism()),
    chunking: opts.chunking ?? { kind: 'fixed', size: MiB },
    codec: opts.codec ?? 'auto',
    verifySource: opts.verifySource ?? 'auto',
    timeouts,
    fetch: { ...defaultFetchLimits, windowBytes: defaultWindowBytes(memoryBudget), ...opts.fetch },
    server: { ...defaultServerLimits, ...opts.server },
    retry: { ...defaultRetryOptions, ...opts.retry },
    journal: { ...defaultJournalOptions, ...opts.journal },
    limits: { ...opts.limits },
    priorityWeights: { ...defaultPriorityWeights, ...opts.priorityWeights },
    maxActiveTransfers: opts.maxActiveTransfers ?? 64,
    maxActiveTransfersPerPeer: opts.maxActiveTransfersPerPeer ?? 32,
    maxQueuedTransfersPerPeer: opts.maxQueuedTransfersPerPeer ?? 100_000,
    gcAssistBytes: opts.gcAssistBytes ?? 0,
    network: { ...opts.network },
    buffers: { ...defaultBufferRecyclerOptions, ...stripUndefined(opts.buffers ?? {}) },
    directWrites: { ...defaultDirectWriteOptions, ...stripUndefined(opts.directWrites ?? {}) },
    sessions: {
      ...defaultSessionPoolOptions,
      idleMs: Math.min(defaultSessionPoolOptions.idleMs, Math.floor(timeouts.idleMs / 2)),
      ...stripUndefined(opts.sessions ?? {}),
    },
    swarm: { ...defaultSwarmOptions, ...opts.swarm },
  }
  verifyBufferRecyclerOptions(config.buffers)
  verifyDirectWriteOptions(config.directWrites)
  verifySwarmOptions(config.swarm)
  verifyRateLimitOptions(config.limits)
  verifyWeights(config.priorityWeights)
  verifyChunkingParams(config.chunking)
  const positive = (name: string, v: number, min = 1): void => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new ConfigInvalidError(`${name} must be an integer >= ${min}, got ${v}`)
  }
  positive('memoryBudget', config.memoryBudget, 4 * MiB)
  positive('workers', config.workers)
  positive('maxActiveTransfers', config.maxActiveTransfers)
  positive('maxActiveTransfersPerPeer', config.maxActiveTransfersPerPeer)
  positive('maxQueuedTransfersPerPeer', config.maxQueuedTransfersPerPeer, 0)
  verifyGcAssistBytes(config.gcAssistBytes)
  for (const [k, v] of Object.entries(config.timeouts)) positive(`timeouts.${k}`, v, 10)
  verifySessionPoolOptions(config.sessions, config.timeouts.idleMs)
  for (const [k, v] of Object.entries(config.fetch)) positive(`fetch.${k}`, v)
  for (const [k, v] of Object.entries(config.server)) positive(`server.${k}`, v)
  verifyRetryOptions(config.retry)
  verifyJournalOptions(config.journal)
  if (!CODEC_POLICIES.includes(config.codec)) {
    throw new ConfigInvalidError(`codec must be one of ${CODEC_POLICIES.join(', ')}, got ${config.codec}`)
  }
  if (!VERIFY_SOURCE_POLICIES.includes(config.verifySource)) {
    throw new ConfigInvalidError(
      `verifySource must be one of ${VERIFY_SOURCE_POLICIES.join(', ')}, got ${String(config.verifySource)}`,
    )
  }
  const maxChunk = maxChunkSize(config.chunking)
  if (config.memoryBudget < 4 * maxChunk) {
    throw new ConfigInvalidError(
      `memoryBudget (${config.memoryBudget}) must hold at least 4 chunks of ${maxChunk} bytes`,
    )
  }
  if (config.fetch.windowBytes < maxChunk) {
    throw new ConfigInvalidError(`fetch.windowBytes must hold at least one chunk (${maxChunk} bytes)`)
  }
  if (config.server.maxFrame < maxChunk + 1024) {
    throw new ConfigInvalidError(`server.maxFrame must exceed the largest chunk (${maxChunk} bytes)`)
  }
  return config
}
