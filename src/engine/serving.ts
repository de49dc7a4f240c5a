/**
 * The engine's serving side: the protocol handler that answers the peers fetching from it, and
 * what all its sessions share (the budget divided between peers, the encoded chunk cache and
 * its pacing, each peer's codec choice, the upload limit, the `onServe` listeners).
 */
import type { Network } from '../net/network.ts'
import { PROTOCOL_ID } from '../protocol/messages.ts'
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { bucketFor } from '../resources/rate-limit.ts'
import { ChunkCache } from '../serve/chunk-cache.ts'
import { CodecChoices } from '../serve/codec-choice.ts'
import { PackPacer } from '../serve/pack-pacer.ts'
import type { ContentRegistry } from '../serve/registry.ts'
import { ServeEvents } from '../serve/serve-events.ts'
import { ServeShares } from '../serve/serve-shares.ts'
import { refuseStream, serveStream } from '../serve/server.ts'
import { UploadSpread } from '../serve/upload-spread.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { EngineConfig } from './config.ts'

/** What serving needs of the engine. */
export interface ServingDeps {
  readonly config: EngineConfig
  readonly budget: MemoryBudget
  /** What there is to serve: published files, collections and partial seeds. */
  readonly registry: ContentRegistry
  readonly pool: WorkerPool
  readonly buffers: BufferRecycler
  /** Aborted when the engine stops. */
  readonly signal: AbortSignal
}

/** One per engine, so that every session it serves shares these; `Engine.stats()` reads them. */
export class Serving {
  readonly #deps: ServingDeps
  /** What serving leases through: the budget divided between the peers being served. */
  readonly shares: ServeShares
  /** Encoded chunks shared by the sessions serving the same content (inside the budget). */
  readonly cache: ChunkCache
  /** What `auto` does for each receiving peer (serve/codec-choice.ts). */
  readonly codecChoices = new CodecChoices()
  /** What serving reports to `onServe` listeners. */
  readonly events = new ServeEvents()

  constructor(deps: ServingDeps) {
    this.#deps = deps
    const { budget, config } = deps
    this.shares = new ServeShares(budget)
    // A receiver that got nothing for the stall rule's shorter bound holds nobody back, nor one
    // whose next chunk has not moved for the stall bound; no read waits for the pack longer than
    // half of it (far below the fetch side's 30 s timeouts). Measured (bench/fanout, loaded
    // machine): giving up on a receiver not moving for 2 s took 16 × 64 MiB to 1.17 reads per
    // chunk, for 5 s 50 × 256 MiB to 1.38 (1.10 with no such rule).
    const stall = config.server.stallTimeoutMs
    const pacer = new PackPacer({
      idleMs: Math.ceil(stall / 5),
      maxWaitMs: Math.ceil(stall / 2),
      stuckMs: stall,
    })
    this.cache = new ChunkCache(budget, config.serveCacheBytes, pacer)
  }

  /** Answers the haul protocol on `network` from now on, each stream as one serving session. */
  async listen(network: Network): Promise<void> {
    const { config, registry, pool, buffers, signal } = this.#deps
    const bucket = bucketFor(config.limits.uploadBytesPerSec, config.limits.burstBytes)
    const upload =
      bucket === undefined
        ? undefined
        : new UploadSpread(bucket, {
            spreadMs: config.server.spreadMs,
            maxTracked: config.server.spreadChunks,
          })
    await network.handle(
      PROTOCOL_ID,
      (stream) =>
        serveStream(stream, {
          registry,
          pool,
          shares: this.shares,
          cache: this.cache,
          codec: config.codec,
          codecChoices: this.codecChoices,
          verifySource: config.verifySource,
          limits: config.server,
          signal,
          buffers,
          events: this.events,
          ...(upload === undefined ? {} : { upload }),
        }),
      { idleTimeoutMs: config.timeouts.idleMs, refuse: refuseStream },
    )
  }
}
