import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import {
  type CollectionFetchOptions,
  type CollectionResult,
  fetchCollection,
} from '../collection/fetch-collection.ts'
import type { CollectionIndex } from '../collection/publish-collection.ts'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { AbortedError, DestinationBusyError, InvalidArgumentError, isHaulError } from '../errors.ts'
import type { DestinationPolicy } from '../fetch/destination.ts'
import { FetchJob } from '../fetch/fetch-job.ts'
import type { MetricsServer } from '../metrics/server.ts'
import { MetricsTally } from '../metrics/tally.ts'
import { ticketAddresses } from '../net/addresses.ts'
import { Network } from '../net/network.ts'
import { raceSignal } from '../net/peer-addr.ts'
import { PROTOCOL_ID } from '../protocol/messages.ts'
import { Admission, type AdmissionPlace } from '../resources/admission.ts'
import { BudgetShare } from '../resources/budget-share.ts'
import { BufferRecycler } from '../resources/buffer-recycler.ts'
import { type FairQueue, fairLimiter } from '../resources/fair-queue.ts'
import { GcAssist } from '../resources/gc-assist.ts'
import { MemoryBudget } from '../resources/memory-budget.ts'
import { bucketFor, chainLimiters, unlimited } from '../resources/rate-limit.ts'
import { ChunkCache } from '../serve/chunk-cache.ts'
import { indexFile } from '../serve/indexer.ts'
import { PackPacer } from '../serve/pack-pacer.ts'
import { ContentRegistry, type PublishedContent } from '../serve/registry.ts'
import { ServeEvents, type ServeListener } from '../serve/serve-events.ts'
import { ServeShares } from '../serve/serve-shares.ts'
import { refuseStream, serveStream } from '../serve/server.ts'
import { SessionPool } from '../session/session-pool.ts'
import { DestinationLock } from '../storage/dest-lock.ts'
import { DirectWriteSlots } from '../storage/direct-writes.ts'
import { DecodedTickets, type Provider, presentingTicket, type SwarmTicket } from '../ticket/multi-ticket.ts'
import type { TransferStatus } from '../transfer/transfer-machine.ts'
import { outputOf, type TransferActor, TransferSystem } from '../transfer/transfer-system.ts'
import type { FetchResult } from '../transfer/transfer-types.ts'
import { WorkerPool } from '../workers/pool.ts'
import type {
  FetchOptions,
  InternalFetchOptions,
  Published,
  PublishOptions,
  Seeded,
  SeedOptions,
  TransferHandle,
} from './api-types.ts'
import { type EngineConfig, type EngineOptions, resolveEngineConfig } from './config.ts'
import { Publishing } from './publishing.ts'
import { type EngineStats, engineStats } from './stats.ts'

/**
 * The part of the memory budget fetches may hold: all but a quarter, which stays for serving, so
 * engines fetching from each other can always serve (see budget-share.ts). A quarter of a budget
 * of at least 4 chunks holds the largest chunk a server reads.
 */
export function fetchShareOf(memoryBudget: number): number {
  return memoryBudget - Math.floor(memoryBudget / 4)
}

/** Decoded tickets an engine keeps for its next fetches (see DecodedTickets). */
export const DECODED_TICKETS = 256

function busyHere(path: string): DestinationBusyError {
  return new DestinationBusyError(
    `${path} is being written by another fetch of this engine: wait for it to finish (waitIfBusy), or choose another destination`,
  )
}

/** The parts of an engine that code inside this package (tests, benches) may use directly. */
export interface EngineInternals {
  readonly network: Network
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
}

let internalsOf: (engine: Engine) => EngineInternals

/**
 * An engine's node, worker pool and memory budget, for tests and benches that drive a part of
 * the engine directly (open a raw session, warm the workers up). Not part of the public API:
 * `src/index.ts` does not export it, and `Engine.stats()` is how the rest read an engine.
 */
export function engineInternals(engine: Engine): EngineInternals {
  return internalsOf(engine)
}

/**
 * A haul engine: one libp2p node, one worker pool and one memory budget shared
 * by everything it publishes and fetches.
 */
export class Engine {
  readonly config: EngineConfig
  readonly #network: Network
  readonly #pool: WorkerPool
  readonly #budget: MemoryBudget
  /** What fetches lease through: the budget less what is kept for serving. */
  readonly #fetchBudget: BudgetShare
  /** What serving leases through: the budget divided between the peers being served. */
  readonly #serveShares: ServeShares
  readonly #registry = new ContentRegistry()
  /** What serving reports to `onServe` listeners. */
  readonly #serveEvents = new ServeEvents()
  readonly #publishing: Publishing
  readonly #stop = new AbortController()
  #gcAssist: GcAssist | undefined
  readonly #system: TransferSystem
  readonly #transfers = new Map<string, FetchJob>()
  /** Download bandwidth, divided between transfers by priority weight (fair even when unlimited). */
  readonly #downloads: FairQueue<void>
  /** Which fetches may run now (per peer and engine-wide); the rest wait in FIFO order. */
  readonly #admission: Admission
  /** Per destination path, the fetch writing it (settles when that fetch does). */
  readonly #writing = new Map<string, Promise<void>>()
  /** Fetches waiting for admission: cancelling one aborts its wait. */
  readonly #queued = new Map<string, AbortController>()
  #stopped = false
  /** Chunk buffers that finished their work, reused by the next chunks (inside the budget). */
  readonly #buffers: BufferRecycler
  /** Encoded chunks shared by the sessions serving the same content (inside the budget). */
  readonly #chunkCache: ChunkCache
  /** Open sessions between fetches from the same peer. */
  readonly #sessions: SessionPool
  /** Staging memory for O_DIRECT chunk writes, shared by every fetch (fixed: slots × 1 MiB). */
  readonly #directWrites: DirectWriteSlots | undefined
  /** The last DECODED_TICKETS tickets fetched, decoded once and shared by their fetches. */
  readonly #tickets = new DecodedTickets(DECODED_TICKETS)
  /**
   * Transfer ids: this engine's random tag and a count. A UUID per fetch costs a tree of ~11
   * V8 cons strings, ~460 bytes of a queued fetch's ~4,600.
   */
  readonly #idTag = randomBytes(6).toString('hex')
  #fetches = 0
  /** The metrics endpoint and its counters (`metrics.listen`); undefined when off. */
  #metrics: { tally: MetricsTally; server: MetricsServer } | undefined

  static {
    internalsOf = (engine) => ({ network: engine.#network, pool: engine.#pool, budget: engine.#budget })
  }

  private constructor(config: EngineConfig, network: Network, pool: WorkerPool, budget: MemoryBudget) {
    this.config = config
    this.#network = network
    this.#pool = pool
    this.#budget = budget
    this.#fetchBudget = new BudgetShare(budget, fetchShareOf(budget.limit))
    this.#serveShares = new ServeShares(budget)
    this.#buffers = new BufferRecycler(budget, config.buffers)
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
    this.#chunkCache = new ChunkCache(budget, config.serveCacheBytes, pacer)
    this.#publishing = new Publishing({
      config,
      registry: this.#registry,
      pool,
      budget,
      self: () => ({ peerId: this.peerId, addrs: ticketAddresses(this.addresses, this.peerId) }),
    })
    this.#sessions = new SessionPool(config.sessions)
    this.#directWrites = config.directWrites.enabled
      ? new DirectWriteSlots(config.directWrites.slots)
      : undefined
    const download = bucketFor(config.limits.downloadBytesPerSec, config.limits.burstBytes)
    this.#downloads = fairLimiter(download ?? unlimited, { weights: config.priorityWeights })
    this.#admission = new Admission({
      maxActive: config.maxActiveTransfers,
      maxActivePerPeer: config.maxActiveTransfersPerPeer,
      maxQueuedPerPeer: config.maxQueuedTransfersPerPeer,
    })
    this.#system = new TransferSystem()
    if (config.gcAssistBytes > 0) {
      this.#gcAssist = new GcAssist(config.gcAssistBytes)
      this.#gcAssist.start()
    }
  }

  static async create(options: EngineOptions = {}): Promise<Engine> {
    const config = resolveEngineConfig(options)
    const budget = new MemoryBudget({ limit: config.memoryBudget })
    const pool = new WorkerPool({ threads: config.workers })
    let network: Network | undefined
    let created: Engine | undefined
    try {
      network = await Network.create({
        listen: config.listen,
        relays: config.relays,
        ...(config.dataDir === undefined ? {} : { dataDir: config.dataDir }),
        connectTimeoutMs: config.timeouts.connectMs,
        ...config.network,
      })
      const engine = new Engine(config, network, pool, budget)
      created = engine
      const upload = bucketFor(config.limits.uploadBytesPerSec, config.limits.burstBytes)
      await network.handle(
        PROTOCOL_ID,
        (stream) =>
          serveStream(stream, {
            registry: engine.#registry,
            pool,
            shares: engine.#serveShares,
            cache: engine.#chunkCache,
            codec: config.codec,
            verifySource: config.verifySource,
            limits: config.server,
            signal: engine.#stop.signal,
            buffers: engine.#buffers,
            events: engine.#serveEvents,
            ...(upload === undefined ? {} : { uploadLimiter: upload }),
          }),
        { idleTimeoutMs: config.timeouts.idleMs, refuse: refuseStream },
      )
      if (config.metrics.listen !== undefined) await engine.#startMetrics(config.metrics.listen)
      return engine
    } catch (err) {
      if (created !== undefined) created.#gcAssist?.stop()
      await network?.stop()
      await pool.destroy()
      throw err
    }
  }

  /** prom-client and the HTTP server are loaded only here: an engine without metrics never pays for them. */
  async #startMetrics(listen: string): Promise<void> {
    const [{ EngineMetrics }, { MetricsServer }] = await Promise.all([
      import('../metrics/collect.ts'),
      import('../metrics/server.ts'),
    ])
    const tally = new MetricsTally()
    const server = await MetricsServer.start(listen, new EngineMetrics({ stats: () => this.stats(), tally }))
    this.onServe(tally.onServe)
    this.#metrics = { tally, server }
  }

  /**
   * Where the Prometheus endpoint listens (`host:port`, serving `/metrics`), the port chosen
   * when `metrics.listen` asked for 0; undefined when metrics are off.
   */
  get metricsAddress(): string | undefined {
    return this.#metrics?.server.address
  }

  get peerId(): string {
    return this.#network.peerId
  }

  /** Dialable multiaddrs, each ending in /p2p/<peerId>. */
  get addresses(): string[] {
    return this.#network.addresses
  }

  /**
   * A snapshot of what the engine holds and does now: memory, transfers, serving, network,
   * workers, sessions (see EngineStats). Plain data, cheap enough to sample every few
   * milliseconds; also after `stop()`.
   */
  stats(): EngineStats {
    return engineStats({
      budget: this.#budget,
      serving: this.#serveShares,
      chunkCache: this.#chunkCache,
      fetchBudget: this.#fetchBudget,
      buffers: this.#buffers,
      registry: this.#registry,
      admission: this.#admission,
      unfinished: this.#transfers.size + this.#queued.size,
      network: this.#network,
      pool: this.#pool,
      sessions: this.#sessions,
    })
  }

  /**
   * Calls `listener` with what this engine serves (ServeEvent): a peer's session opening, the
   * content it asks for, chunks sent (at most one event per session every 500 ms, adding up to
   * every chunk), and the session's end with its bytes and why. Synchronous, inside the serving
   * loop: keep it quick. Returns the function that removes it. Nothing is built while no one
   * listens.
   */
  onServe(listener: ServeListener): () => void {
    return this.#serveEvents.listen(listener)
  }

  /**
   * Indexes `path`, serves it, and returns the ticket a receiver needs (it carries the file's
   * name). Calls for one path run one after the other: at once they would write the same
   * descriptor file.
   */
  publish(path: string, opts: PublishOptions = {}): Promise<Published> {
    this.#assertRunning()
    return this.#publishing.publish(path, opts)
  }

  /**
   * Publishes a folder, or several files and folders, as one collection (src/collection/): its
   * files' bytes are indexed in place as one pack, its manifest lists paths, modes and sizes.
   * Returns the ticket `fetchCollection` (and `haul get`) takes.
   */
  publishCollection(
    paths: string | readonly string[],
    opts: PublishOptions = {},
  ): Promise<{ ticket: string; index: CollectionIndex }> {
    this.#assertRunning()
    return this.#publishing.publishCollection(typeof paths === 'string' ? [paths] : [...paths], opts)
  }

  /** Stops serving `cid` (a collection's manifest id stops its pack too). */
  unpublish(cid: Uint8Array): void {
    this.#publishing.unpublish(cid)
  }

  /**
   * Starts fetching `ticket` into `dest`; progress and the result come through the handle.
   * The transfer waits its turn (see `maxActiveTransfers`) as a plain record: its actor,
   * stream and files exist only once it is admitted. Its status is `resolving` meanwhile.
   */
  fetch(ticketText: string, dest: string, opts: FetchOptions = {}): TransferHandle {
    this.#assertRunning()
    const decoded = this.#tickets.decode(ticketText)
    if (decoded.kind === 'collection') {
      throw new InvalidArgumentError(
        'this ticket names a folder (a collection): fetch it with fetchCollection (haul get does)',
      )
    }
    return this.#fetch(decoded, dest, opts)
  }

  /**
   * Fetches the collection a ticket names (from `publishCollection`, or `haul send <folder>`)
   * into the folder `dest`: every file verified before it appears under its final name, the
   * whole of it resumable by calling again after an interruption. See src/collection/.
   */
  fetchCollection(
    ticketText: string,
    dest: string,
    opts: CollectionFetchOptions = {},
  ): Promise<CollectionResult> {
    this.#assertRunning()
    const decoded = this.#tickets.decode(ticketText)
    if (decoded.kind !== 'collection') {
      return Promise.reject(
        new InvalidArgumentError(
          'this ticket names one file, not a folder: fetch it with fetch (haul get does)',
        ),
      )
    }
    return fetchCollection(
      {
        pool: this.#pool,
        budget: this.#budget,
        chunking: this.config.chunking,
        fetchContent: (ticket, path, o) => this.#fetch(ticket, path, o),
      },
      decoded,
      dest,
      opts,
    )
  }

  #fetch(decoded: SwarmTicket, dest: string, opts: InternalFetchOptions): TransferHandle {
    const providers = [...decoded.providers]
    const beside = presentingTicket(decoded)
    for (const p of opts.providers ?? [])
      if (!providers.some((q) => q.peerId === p.peerId)) providers.push(beside(p))
    const swarm = opts.swarm ?? providers.length > 1
    const id = `${this.#idTag}-${++this.#fetches}`
    const path = resolvePath(dest)
    const waiting = new AbortController()
    let actor: TransferActor | undefined
    let job: FetchJob | undefined
    const cancel = (): void => {
      if (actor === undefined) waiting.abort(new AbortedError('the transfer was cancelled'))
      // A finished transfer has been reaped from the actor system: nothing to cancel.
      else if (this.#transfers.has(id)) this.#system.cancel(id)
    }
    opts.signal?.addEventListener('abort', cancel, { once: true })
    this.#queued.set(id, waiting)
    /** The transfer once admitted and holding its destination: the job, its actor, cleanup. */
    const runJob = async (place: AdmissionPlace): Promise<FetchResult> => {
      if (this.#stopped) {
        place.release()
        throw new AbortedError('the engine is stopped')
      }
      const flow = this.#downloads.flow(opts.priority ?? 'normal')
      const limiter = chainLimiters(
        bucketFor(opts.maxBytesPerSec ?? this.config.limits.perTransferDownloadBytesPerSec),
        flow,
      )
      job = this.#fetchJob({ cid: decoded.cid, providers }, path, limiter, place, swarm, opts)
      const admitted = job
      this.#transfers.set(id, admitted)
      const running = this.#system.spawn(id, admitted)
      actor = running
      this.#metrics?.tally.started(id, {
        status: () => running.getSnapshot().value as TransferStatus,
        progress: () => admitted.progress(),
        stats: () => admitted.stats(),
      })
      const output = await outputOf(running)
      flow.close()
      if (output.status === 'done') place.completed()
      await admitted.cleanup()
      // Read last once cleaned up: until then it is unfinished, and counted in its final state.
      this.#metrics?.tally.settled(id)
      this.#transfers.delete(id)
      this.#system.reap(id)
      if (output.status === 'done') return admitted.result()
      throw output.error ?? new AbortedError('the transfer was cancelled')
    }
    const before = this.#writing.get(path)
    let failedEarly = false
    const run = async (): Promise<FetchResult> => {
      let place: AdmissionPlace
      let lock: DestinationLock
      try {
        if (before !== undefined) {
          if (opts.waitIfBusy !== true) throw busyHere(path)
          await raceSignal(before, waiting.signal)
        }
        // A multi-peer fetch takes its turn with its first provider.
        place = await this.#admission.acquire(providers[0]!.peerId, waiting.signal)
        try {
          lock = await DestinationLock.acquire(path, {
            wait: opts.waitIfBusy === true,
            signal: waiting.signal,
          })
        } catch (err) {
          place.release()
          throw err
        }
      } catch (err) {
        failedEarly = true
        // Cancelled or stopped while waiting: fail with that reason, as a running transfer would.
        throw waiting.signal.aborted && isHaulError(waiting.signal.reason) ? waiting.signal.reason : err
      } finally {
        this.#queued.delete(id)
      }
      try {
        return await runJob(place)
      } finally {
        await lock.release()
      }
    }
    let writing: Promise<void> | undefined
    const result = run().finally(() => {
      // Before `result` settles: a fetch to the same path started as soon as the caller sees
      // the outcome (a retry after a cancel) does not find this one still writing.
      if (writing !== undefined && this.#writing.get(path) === writing) this.#writing.delete(path)
      opts.signal?.removeEventListener('abort', cancel)
    })
    const tally = this.#metrics?.tally
    if (tally !== undefined)
      result.then(
        () => tally.finishedWith(),
        (err: unknown) => tally.finishedWith(err),
      )
    // Until this fetch settles, another one to the same path fails with DESTINATION_BUSY or waits.
    if (before === undefined || opts.waitIfBusy === true) {
      writing = result.then(
        () => {},
        () => {},
      )
      this.#writing.set(path, writing)
    }
    if (opts.signal?.aborted) cancel()
    return {
      id,
      result,
      status: () => {
        if (actor === undefined) {
          if (waiting.signal.aborted) return 'cancelled'
          return failedEarly ? 'failed' : 'resolving'
        }
        return (actor.getSnapshot().value as TransferStatus) ?? 'failed'
      },
      progress: () => job?.progress(),
      cancel,
      addProvider: (added) => {
        const p = beside(added)
        // Still waiting for its turn: the job starts with it.
        if (job === undefined) {
          if (!providers.some((q) => q.peerId === p.peerId)) providers.push(p)
        } else job.addProvider(p)
      },
      swarmStats: () => job?.stats(),
    }
  }

  /**
   * Serves the verified chunks of a resumable `<dest>.part` (from an interrupted multi-peer
   * fetch: its journal and leaf sidecar) to others: partial seeding. The returned ticket names
   * this engine (with a secret of its own, unless `public`); `unpublish(cid)` stops it.
   */
  seed(dest: string, opts: SeedOptions = {}): Promise<Seeded> {
    this.#assertRunning()
    return this.#publishing.seed(dest, opts)
  }

  /** `seeding`: the fetch serves what it has verified so far (partial seeding; FetchOptions.swarm). */
  #fetchJob(
    ticket: { cid: Uint8Array; providers: Provider[] },
    dest: string,
    limiter: ReturnType<typeof chainLimiters>,
    place: AdmissionPlace,
    seeding: boolean,
    opts: InternalFetchOptions,
  ): FetchJob {
    const c = this.config
    const share =
      seeding && c.swarm.serve
        ? (content: PublishedContent) => {
            if (!this.#registry.addIfAbsent(content)) return () => {}
            return () => this.#registry.removeIfSame(content)
          }
        : undefined
    return new FetchJob(
      {
        network: this.#network,
        pool: this.#pool,
        budget: this.#fetchBudget,
        buffers: this.#buffers,
        limits: c.fetch,
        timeouts: c.timeouts,
        maxFrame: c.server.maxFrame,
        retry: c.retry,
        // Partial seeding serves what the journal says is verified, so every size keeps one.
        journal: share === undefined ? c.journal : { ...c.journal, minBytes: 0 },
        directWrites: opts.scratch === true ? undefined : this.#directWrites,
        scratch: opts.scratch,
        swarm: c.swarm,
        limiter,
        sessions: this.#sessions,
        place,
        destination: this.#destinationPolicy(opts),
        share,
        accept: opts.accept,
      },
      ticket,
      dest,
      {
        onProgress: opts.onProgress,
        onRetry: this.#countRetries(opts.onRetry),
        onResume: opts.onResume,
        onChunk: opts.onChunk,
      },
    )
  }

  /** `onRetry`, counting each retry first when metrics are on. */
  #countRetries(onRetry: FetchOptions['onRetry']): FetchOptions['onRetry'] {
    const tally = this.#metrics?.tally
    if (tally === undefined) return onRetry
    return (info) => {
      tally.retried(info.error)
      onRetry?.(info)
    }
  }

  #destinationPolicy(opts: FetchOptions): DestinationPolicy {
    return {
      overwrite: opts.overwrite === true,
      contentIdOf: (path, header, signal) => this.#contentIdOf(path, header, signal),
    }
  }

  /** The content id of a local file cut as `header` says: indexed with this engine's workers and budget. */
  async #contentIdOf(path: string, header: DescriptorHeader, signal: AbortSignal): Promise<Uint8Array> {
    const dir = await mkdtemp(join(tmpdir(), 'haul-check-'))
    try {
      const r = await indexFile(path, {
        chunking: header.chunking,
        pageSize: header.pageSize,
        pool: this.#pool,
        budget: this.#budget,
        descriptorPath: join(dir, 'check.haul'),
        signal,
      })
      return r.cid
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  /**
   * Cancels every fetch, waits for each to release its stream and files, then stops serving and
   * the node. Bounded whatever the peers do: a fetch's stream is reset, and one finishing (its
   * file already renamed) waits at most `timeouts.closeMs` for its peer to close.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const metrics = this.#metrics?.server.close()
    // Listeners hear how every live session ended before the engine goes.
    this.#serveEvents.stop()
    this.#gcAssist?.stop()
    for (const id of this.#transfers.keys()) this.#system.cancel(id)
    const stopped = new AbortedError('the engine is stopped')
    for (const waiting of this.#queued.values()) waiting.abort(stopped)
    this.#admission.rejectWaiters(stopped)
    this.#stop.abort()
    await Promise.allSettled([...this.#transfers.values()].map((j) => j.cleanup()))
    this.#sessions.close()
    this.#system.stop()
    await this.#registry.closeAll()
    await this.#network.stop()
    this.#buffers.destroy()
    await this.#pool.destroy()
    await metrics
  }

  #assertRunning(): void {
    if (this.#stopped) throw new AbortedError('the engine is stopped: create a new one')
  }
}
