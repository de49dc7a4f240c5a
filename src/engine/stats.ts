import type { AdmissionStats } from '../net/connection-admission.ts'
import type { Network } from '../net/network.ts'
import type { Admission } from '../resources/admission.ts'
import type { BudgetShare } from '../resources/budget-share.ts'
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import type { ChunkCache } from '../serve/chunk-cache.ts'
import type { CodecChoices } from '../serve/codec-choice.ts'
import type { ContentRegistry } from '../serve/registry.ts'
import type { ServeShares } from '../serve/serve-shares.ts'
import type { SessionPool } from '../session/session-pool.ts'
import type { WorkerPool } from '../workers/pool.ts'

/**
 * What an engine holds and does at one instant (`Engine.stats()`): plain data, a new object on
 * every call, safe to `JSON.stringify`. Byte counts end in `Bytes`; every other number is a count.
 * Counters that say "since start" only grow; the rest are levels at the instant of the call.
 */
export interface EngineStats {
  readonly memory: MemoryStats
  readonly transfers: TransferStats
  readonly serving: ServingStats
  readonly network: NetworkStats
  readonly workers: WorkerStats
  readonly sessions: SessionStats
}

/** The memory budget (`memoryBudget`) that every chunk buffer in flight holds a lease on. */
export interface MemoryStats {
  /** The budget: the most chunk memory leased at once. */
  readonly limitBytes: number
  /** Leased now: chunk work in flight, the idle recycled buffers (`buffers.idleBytes`) and cached chunks (`serving.chunks.cachedBytes`). */
  readonly usedBytes: number
  /** Leased by chunk work in flight: `usedBytes` less the idle buffers and cached chunks; 0 when nothing is being done. */
  readonly workBytes: number
  /** `limitBytes - usedBytes`. */
  readonly availableBytes: number
  /** The highest `usedBytes` since start. */
  readonly peakBytes: number
  /** Requests for budget memory waiting for room (fetching, serving and indexing alike). */
  readonly waiting: number
  /** The part of the budget fetches lease through: all but the quarter kept for serving. */
  readonly fetches: {
    readonly limitBytes: number
    /** Leased by fetches now (granted, or reserved and waiting at the budget). */
    readonly usedBytes: number
    /** Fetch requests waiting for room in their part. */
    readonly waiting: number
  }
  /** Chunk buffers that finished their work, kept for the next chunks. */
  readonly buffers: {
    /** Held idle, each covered by a lease: part of `usedBytes`, given back to any waiter first. */
    readonly idleBytes: number
    /** Passed between owners while the budget has no room: held without a lease, briefly. */
    readonly handedBytes: number
    /** Buffer takes since start that reused a kept buffer. */
    readonly hits: number
    /** Buffer takes since start that allocated a fresh one. */
    readonly misses: number
    /**
     * Finished buffers that could not be kept (compressed payloads, sizes over `maxIdleBytes`),
     * freed at once rather than left for the garbage collector.
     */
    readonly freed: number
  }
}

export interface TransferStats {
  /** Fetches started and not settled yet: running, or waiting for their turn or their destination. */
  readonly unfinished: number
  /** Fetches admitted now (≤ `maxActiveTransfers`): each may hold a stream, a part file and a journal. */
  readonly active: number
  /** Fetches waiting for their turn (`maxActiveTransfers`, `maxActiveTransfersPerPeer`). */
  readonly queued: number
}

/** The serving side: what this engine publishes and what the peers it serves hold. */
export interface ServingStats {
  /** Content ids served: published files and partial seeds. */
  readonly contents: number
  /** Peers with a serving stream open or a lease not yet given back. */
  readonly peers: number
  /** Peers holding or waiting for budget memory; they divide the serving part of the budget. */
  readonly peersLeasing: number
  /** Budget leased by serving streams (granted, or reserved and waiting at the budget), and cached chunks lent to them, counted per peer (the cache's lease covers a chunk once). */
  readonly leasedBytes: number
  /** Unfinished request frames held across every peer's streams (outside the budget). */
  readonly partialFrameBytes: number
  /** Chunks served since start, and how many of them took a read (`serveCacheBytes`). */
  readonly chunks: {
    /** Chunks read from disk and encoded to be served, since start. */
    readonly reads: number
    /** Chunk frames handed to the network, since start. */
    readonly served: number
    /** Chunks that needed no read of their own (cached, or read for another session at that moment), since start. */
    readonly cacheHits: number
    /** Encoded chunks cached now: part of `memory.usedBytes`, at most `cacheLimitBytes`. */
    readonly cachedBytes: number
    /** `serveCacheBytes`. */
    readonly cacheLimitBytes: number
    /** Reads that first waited for receivers of the same content a cache window behind to catch up, since start. */
    readonly pacedReads: number
  }
  /**
   * The codec each receiving peer's link is served with (codec `auto`): peers by chosen step,
   * `none`, `zstd-1`, `zstd-3` or `zstd-9` (src/serve/codec-choice.ts; at most 1,024 peers kept).
   */
  readonly codecSteps: Readonly<Record<string, number>>
}

export interface NetworkStats {
  /** Open libp2p connections, both directions. */
  readonly connections: number
  /** Protocol streams open now, both directions (serving streams and idle sessions included). */
  readonly openStreams: number
  /** Streams this engine opened to peers since start (a fetch that reuses an idle session opens none). */
  readonly streamsOpened: number
  /**
   * Encrypted bytes waiting in the TCP connections for the kernel, all connections together
   * (outside the memory budget; at most ~1.1 MiB and the socket's high-water mark per connection).
   */
  readonly socketQueuedBytes: number
  /** Inbound sockets in their handshake now, and those refused or evicted since start. */
  readonly admission: AdmissionStats
}

export interface WorkerStats {
  /** Worker threads (`workers`): at most this many run. */
  readonly threads: number
  /** Threads started now: one from the start, more while tasks wait for one, each ending after 30 s without. */
  readonly running: number
  /** Tasks handed to the threads and not finished yet. */
  readonly tasksInFlight: number
  /** Tasks accepted and not running yet. */
  readonly tasksQueued: number
}

export interface SessionStats {
  /** Streams kept open after a fetch for the next fetch from the same peer (`sessions.maxIdle`). */
  readonly idle: number
}

/** The engine parts a snapshot reads. */
export interface StatsSources {
  readonly budget: MemoryBudget
  readonly serving: ServeShares
  readonly chunkCache: ChunkCache
  readonly codecChoices: CodecChoices
  readonly fetchBudget: BudgetShare
  readonly buffers: BufferRecycler
  readonly registry: ContentRegistry
  readonly admission: Admission
  /** Fetches started and not settled yet. */
  readonly unfinished: number
  readonly network: Network
  readonly pool: WorkerPool
  readonly sessions: SessionPool
}

export function engineStats(s: StatsSources): EngineStats {
  const serving = s.serving.stats
  const buffers = s.buffers.stats
  const chunks = s.chunkCache.stats
  return {
    memory: {
      limitBytes: s.budget.limit,
      usedBytes: s.budget.used,
      workBytes: s.budget.used - s.buffers.idleBytes - chunks.cachedBytes,
      availableBytes: s.budget.available,
      peakBytes: s.budget.peak,
      waiting: s.budget.waiting,
      fetches: {
        limitBytes: s.fetchBudget.limit,
        usedBytes: s.fetchBudget.used,
        waiting: s.fetchBudget.waiting,
      },
      buffers: {
        idleBytes: s.buffers.idleBytes,
        handedBytes: s.buffers.handedBytes,
        hits: buffers.hits,
        misses: buffers.misses,
        freed: buffers.freed,
      },
    },
    transfers: {
      unfinished: s.unfinished,
      active: s.admission.active,
      queued: s.admission.waiting,
    },
    serving: {
      contents: s.registry.size,
      peers: serving.peers,
      peersLeasing: serving.served,
      leasedBytes: serving.leased,
      partialFrameBytes: serving.partialBytes,
      chunks: {
        reads: chunks.reads,
        served: chunks.served,
        cacheHits: chunks.hits,
        cachedBytes: chunks.cachedBytes,
        cacheLimitBytes: chunks.maxBytes,
        pacedReads: chunks.paced,
      },
      codecSteps: s.codecChoices.chosenSteps(),
    },
    network: {
      connections: s.network.connectionCount(),
      openStreams: s.network.openStreamCount(),
      streamsOpened: s.network.streamsOpened,
      socketQueuedBytes: s.network.socketQueuedBytes(),
      admission: { ...s.network.admissionStats() },
    },
    workers: {
      threads: s.pool.threads,
      running: s.pool.running,
      tasksInFlight: s.pool.inFlight,
      tasksQueued: s.pool.queueSize,
    },
    sessions: { idle: s.sessions.idle },
  }
}
