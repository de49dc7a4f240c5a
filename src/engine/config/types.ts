import type { FetchLimits } from '../../fetch/fetch-context.ts'
import type { SwarmOptions } from '../../fetch/swarm-options.ts'
import type { AdmissionOptions } from '../../net/connection-admission.ts'
import type { EngineNetworkOptions } from '../../net/options.ts'
import type { BufferRecyclerOptions } from '../../resources/buffer-recycler.ts'
import type { Priority } from '../../resources/fair-queue.ts'
import type { RateLimitOptions } from '../../resources/rate-limit.ts'
import type { VerifySourcePolicy } from '../../serve/chunk-encoder.ts'
import type { ServerLimits } from '../../serve/server-context.ts'
import type { SessionPoolOptions } from '../../session/session-pool.ts'
import type { DirectWriteOptions } from '../../storage/direct-writes.ts'
import type { JournalOptions } from '../../storage/journal-options.ts'
import type { RetryOptions } from '../../transfer/retry.ts'
import type { TransferTimeouts } from '../../transfer/transfer-types.ts'
import type { ChunkingParams } from '../../types.ts'
import type { CodecPolicy } from '../../workers/codecs.ts'

/**
 * What `createEngine` accepts. Every field may be left out or `undefined`, at any depth, and
 * then takes its default; an unknown key, a wrong type or a value out of range is a
 * ConfigInvalidError naming the option's path. Defaults, ranges and the one-line meaning of
 * each option are in one table, src/engine/config/table.ts (README, "`createEngine` options",
 * is generated from it).
 */
export interface EngineOptions {
  /** libp2p listen addresses. */
  listen?: string[]
  /** Circuit relays (multiaddrs ending in /p2p/<relay peer id>) to reserve a slot on. */
  relays?: string[]
  /** A Kademlia DHT to find providers on and announce published content to (off by default). */
  dht?: Partial<DhtOptions>
  /** Folder for the node's identity key and published descriptors; without it, a fresh identity each start and descriptors beside the files. */
  dataDir?: string
  /**
   * Where `createEngine` runs the engine: `'main'` in the calling thread; `'worker'` in a worker
   * thread of its own, reached through a comlink proxy with the same API (src/engine/thread/),
   * so a large transfer leaves the caller's event loop free. `Engine.create` always runs the
   * engine in the calling thread. @default 'main'
   */
  thread?: EngineThread
  /** Bytes of chunk buffers the engine may hold at once, across all transfers (at least 4 chunks). */
  memoryBudget?: number
  /** Worker threads for hashing and compression. */
  workers?: number
  /** How published files are cut. */
  chunking?: ChunkingParams
  /** Per-chunk compression when serving. */
  codec?: CodecPolicy
  /**
   * When serving hashes a chunk against its leaf before sending it: `auto` trusts a published
   * file whose stat (device, inode, size, mtime, ctime) is unchanged and hashes only files that
   * changed within 2 s of being published; `always` hashes every chunk (filesystems whose ctime
   * cannot be trusted). Either way the receiver verifies every chunk.
   */
  verifySource?: VerifySourcePolicy
  timeouts?: Partial<TransferTimeouts>
  fetch?: Partial<FetchLimits>
  server?: Partial<ServerLimits>
  /** Reconnecting after transient failures. */
  retry?: Partial<RetryOptions>
  /** The resume journal beside `<dest>.part`. */
  journal?: Partial<JournalOptions>
  /** Bandwidth limits (token buckets, bytes per second); none by default. */
  limits?: RateLimitOptions
  /** How download bandwidth divides between fetch priorities under contention. */
  priorityWeights?: Partial<Record<Priority, number>>
  /**
   * Fetches that run at once, across all peers: only these hold a stream, a part file, a
   * journal and an actor; the others wait their turn in FIFO order (in `resolving`) as plain
   * records of a few hundred bytes. Bounds the receiver's open streams and files, and what
   * they hold, whatever the number of fetches.
   */
  maxActiveTransfers?: number
  /**
   * Fetches from one peer that run at once; the others wait their turn in FIFO order
   * (in `resolving`), holding no stream, buffer or file.
   */
  maxActiveTransfersPerPeer?: number
  /** Fetches that may wait for their turn per peer; one more fails with TOO_MANY_REQUESTS. */
  maxQueuedTransfersPerPeer?: number
  /**
   * Starts a full garbage collection whenever the process's ArrayBuffer memory has grown this
   * much since the last one (V8 waits for ~64 MB), lowering peak RSS at a cost in CPU; it acts
   * on the whole process. 0: off. See src/resources/gc-assist.ts.
   */
  gcAssistBytes?: number
  /**
   * Encoded chunks kept for every session serving the same content, so that many receivers of one
   * file at once cost one read and encode per chunk (src/serve/chunk-cache.ts). Its entries hold
   * leases on the memory budget and are the first memory given back when a waiter needs room.
   * The receivers of one content are kept within this window of each other (a read that would
   * run further ahead waits, src/serve/pack-pacer.ts). Default: half of `memoryBudget`. 0: off.
   */
  serveCacheBytes?: number
  /**
   * Finished chunk buffers kept for reuse. Idle ones hold leases on the memory budget; while
   * the budget has no room, buffers are handed to the next taker without a lease (at most
   * `maxIdleBytes` of them, for at most 250 ms), so chunk memory is at most `memoryBudget +
   * maxIdleBytes`.
   */
  buffers?: BufferRecyclerOptions
  /**
   * Verified chunks written with O_DIRECT through fixed staging memory (slots × 1 MiB), where
   * the filesystem accepts it (see src/storage/direct-writes.ts).
   */
  directWrites?: Partial<DirectWriteOptions>
  /**
   * Streams kept open after a fetch finished, for the next fetch from the same peer (it then
   * skips the stream's open, protocol negotiation and hello).
   */
  sessions?: Partial<SessionPoolOptions>
  /** Multi-peer fetches and partial seeding (see README, "Multi-peer fetches"). */
  swarm?: Partial<SwarmOptions>
  /** Per-peer stream limits and connection admission of the libp2p node (see src/net/README.md). */
  network?: Partial<EngineNetworkOptions>
  /** A Prometheus endpoint (`GET /metrics` on `listen`); off unless `listen` is given (docs/METRICS.md). */
  metrics?: Partial<MetricsOptions>
}

export interface DhtOptions {
  /** Peers to join the DHT through, each ending in /p2p/<peer id>; giving any turns it on. */
  bootstrap: string[]
  /** Run the DHT; with no bootstrap peer, others join this one. */
  enabled: boolean
  /** Providers one fetch takes from lookups. */
  maxProviders: number
  /** Provider records one lookup reads before it stops. */
  maxRecords: number
  /** How long a fetch by content id looks for its first provider. */
  lookupMs: number
  /** How often a running fetch by content id looks for more providers. */
  refreshMs: number
  /** How often published content is announced again. */
  announceMs: number
}

/** Which thread `createEngine` runs the engine in (EngineOptions.thread). */
export type EngineThread = 'main' | 'worker'

export interface MetricsOptions {
  /** `host:port` to serve `/metrics` on; port 0: any free port (`Engine.metricsAddress`). */
  listen: string | undefined
}

/** The network options of a resolved engine config: every one set. */
export type EngineNetworkConfig = Required<Omit<EngineNetworkOptions, 'admission'>> & {
  admission: Required<AdmissionOptions>
}

/** `EngineOptions` resolved: every option set, checked. */
export interface EngineConfig {
  readonly listen: string[]
  readonly relays: string[]
  readonly dht: DhtOptions
  readonly dataDir: string | undefined
  readonly thread: EngineThread
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
  readonly serveCacheBytes: number
  readonly network: EngineNetworkConfig
  readonly buffers: Required<BufferRecyclerOptions>
  readonly directWrites: DirectWriteOptions
  readonly sessions: SessionPoolOptions
  readonly swarm: SwarmOptions
  readonly metrics: MetricsOptions
}
