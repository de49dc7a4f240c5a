import type { CollectionFetchOptions, CollectionResult } from '../collection/fetch-collection.ts'
import type { CollectionIndex } from '../collection/publish-collection.ts'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { AbortedError } from '../errors.ts'
import { RecentPeers } from '../fetch/recent-peers.ts'
import type { MetricsServer } from '../metrics/server.ts'
import { MetricsTally } from '../metrics/tally.ts'
import { ticketAddresses } from '../net/addresses.ts'
import { Network } from '../net/network.ts'
import { BudgetShare } from '../resources/budget-share.ts'
import { BufferRecycler } from '../resources/buffer-recycler.ts'
import { GcAssist } from '../resources/gc-assist.ts'
import { raiseMallocThresholds } from '../resources/malloc-thresholds.ts'
import { MemoryBudget } from '../resources/memory-budget.ts'
import type { ContentRouting } from '../routing/content-routing.ts'
import { ContentRegistry } from '../serve/registry.ts'
import type { ServeListener } from '../serve/serve-events.ts'
import { SessionPool } from '../session/session-pool.ts'
import { DirectWriteSlots } from '../storage/direct-writes.ts'
import { OpenFiles } from '../storage/open-files.ts'
import { Pending } from '../util/pending.ts'
import { WorkerPool } from '../workers/pool.ts'
import { checkArgs, contentIdArg, guardListener, rejecting } from './api-args.ts'
import type {
  FetchOptions,
  Published,
  PublishOptions,
  Seeded,
  SeedOptions,
  TransferHandle,
} from './api-types.ts'
import { type EngineConfig, type EngineOptions, resolveEngineConfig } from './config.ts'
import { FetchRequests } from './fetch-requests.ts'
import { Fetches } from './fetches.ts'
import { Publishing } from './publishing.ts'
import { Serving } from './serving.ts'
import { type EngineStats, engineStats } from './stats.ts'

/**
 * The part of the memory budget fetches may hold: all but a quarter, which stays for serving, so
 * engines fetching from each other can always serve (see budget-share.ts). A quarter of a budget
 * of at least 4 chunks holds the largest chunk a server reads.
 */
export function fetchShareOf(memoryBudget: number): number {
  return memoryBudget - Math.floor(memoryBudget / 4)
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
  readonly #registry = new ContentRegistry()
  /** What answers the peers fetching from this engine, and what their sessions share. */
  readonly #serving: Serving
  readonly #publishing: Publishing
  readonly #stop = new AbortController()
  #gcAssist: GcAssist | undefined
  /** Every fetch, queued or running. */
  readonly #fetches: Fetches
  /** What `fetch` and `fetchCollection` are given, resolved to what they fetch. */
  readonly #requests: FetchRequests
  /** Collection fetches until they settle: each holds its folder's lock, which `stop` waits for. */
  readonly #collections = new Pending<CollectionResult>()
  #stopped = false
  /** Chunk buffers that finished their work, reused by the next chunks (inside the budget). */
  readonly #buffers: BufferRecycler
  /** Open sessions between fetches from the same peer. */
  readonly #sessions: SessionPool
  /** The metrics endpoint and its counters (`metrics.listen`); undefined when off. */
  #metrics: { tally: MetricsTally; server: MetricsServer } | undefined
  /** Providers found and content announced on the DHT (`dht`); undefined when off. */
  #routing: ContentRouting | undefined

  static {
    internalsOf = (engine) => ({ network: engine.#network, pool: engine.#pool, budget: engine.#budget })
  }

  private constructor(config: EngineConfig, network: Network, pool: WorkerPool, budget: MemoryBudget) {
    this.config = config
    this.#network = network
    this.#pool = pool
    this.#budget = budget
    this.#fetchBudget = new BudgetShare(budget, fetchShareOf(budget.limit))
    this.#buffers = new BufferRecycler(budget, config.buffers)
    this.#serving = new Serving({
      config,
      budget,
      registry: this.#registry,
      pool,
      buffers: this.#buffers,
      signal: this.#stop.signal,
    })
    this.#publishing = new Publishing({
      config,
      registry: this.#registry,
      pool,
      budget,
      openFiles: new OpenFiles(config.server.maxOpenFiles),
      self: () => ({ peerId: this.peerId, addrs: ticketAddresses(this.addresses, this.peerId) }),
    })
    network.onRelayChange((c) => {
      if (this.#serving.events.active) this.#serving.events.emit({ type: 'relay-slot', ...c })
    })
    this.#sessions = new SessionPool(config.sessions)
    this.#fetches = new Fetches({
      config,
      network,
      pool,
      budget,
      fetchBudget: this.#fetchBudget,
      buffers: this.#buffers,
      sessions: this.#sessions,
      recentPeers: new RecentPeers(),
      // Staging memory for O_DIRECT chunk writes, shared by every fetch (fixed: slots × 1 MiB).
      directWrites: config.directWrites.enabled ? new DirectWriteSlots(config.directWrites.slots) : undefined,
      registry: this.#registry,
      tally: () => this.#metrics?.tally,
      routing: () => this.#routing,
      provide: (path, cid, header) => this.#provide(path, cid, header),
    })
    this.#requests = new FetchRequests({
      config,
      pool,
      budget,
      fetches: this.#fetches,
      routing: () => this.#routing,
    })
    if (config.gcAssistBytes > 0) {
      this.#gcAssist = new GcAssist(config.gcAssistBytes)
      this.#gcAssist.start()
    }
  }

  static async create(options: EngineOptions = {}): Promise<Engine> {
    const config = resolveEngineConfig(options)
    raiseMallocThresholds()
    const budget = new MemoryBudget({ limit: config.memoryBudget })
    const pool = new WorkerPool({ threads: config.workers })
    let network: Network | undefined
    let created: Engine | undefined
    try {
      network = await Network.create({
        listen: config.listen,
        relays: config.relays,
        dht: config.dht.enabled,
        ...(config.dataDir === undefined ? {} : { dataDir: config.dataDir }),
        connectTimeoutMs: config.timeouts.connectMs,
        deadConnectionMs: config.timeouts.deadConnectionMs,
        ...config.network,
      })
      const engine = new Engine(config, network, pool, budget)
      created = engine
      if (config.dht.enabled) {
        const { ContentRouting } = await import('../routing/content-routing.ts')
        engine.#routing = await ContentRouting.join(network, config.dht)
      }
      await engine.#serving.listen(network)
      if (config.metrics.listen !== undefined) await engine.#startMetrics(config.metrics.listen)
      return engine
    } catch (err) {
      if (created !== undefined) {
        created.#gcAssist?.stop()
        await created.#routing?.stop()
      }
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
      serving: this.#serving.shares,
      chunkCache: this.#serving.cache,
      codecChoices: this.#serving.codecChoices,
      fetchBudget: this.#fetchBudget,
      buffers: this.#buffers,
      registry: this.#registry,
      admission: this.#fetches.admission,
      unfinished: this.#fetches.unfinished,
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
   * listens. A listener that throws is reported as a `HaulCallbackWarning` process warning (once
   * per listener), as a throwing callback option is; serving goes on.
   */
  onServe(listener: ServeListener): () => void {
    return this.#serving.events.listen(guardListener('onServe', listener))
  }

  /**
   * Indexes `path`, serves it, and returns the ticket a receiver needs (it carries the file's
   * name). Calls for one path run one after the other: at once they would write the same
   * descriptor file.
   */
  publish(path: string, options: PublishOptions = {}): Promise<Published> {
    return this.#serve(
      'publish',
      path,
      options,
      (p, o) => this.#publishing.publish(p, o),
      (r) => r.index.cid,
    )
  }

  /**
   * A publish or a seed: checked, its options guarded, and, when the engine runs a DHT and the
   * caller did not say `announce: false`, served publicly and announced.
   */
  #serve<O extends SeedOptions, R extends { announced?: Promise<boolean> }>(
    method: 'publish' | 'seed',
    path: string,
    options: O,
    run: (path: string, opts: O) => Promise<R>,
    cidOf: (r: R) => Uint8Array,
  ): Promise<R> {
    return rejecting(() => {
      this.#assertRunning()
      const opts = checkArgs[method](path, options)
      const routing = opts.announce === false ? undefined : this.#routing
      if (routing === undefined) return this.#unlessStopped(run(path, opts))
      return this.#unlessStopped(run(path, { ...opts, public: true })).then((r) => ({
        ...r,
        announced: routing.announce(cidOf(r)),
      }))
    })
  }

  /**
   * `work`'s outcome, unless the engine's stop began before it settled: then ABORTED, not what
   * the stop made of it (a ticket naming none of the addresses it closed, indexing's workers gone).
   */
  #unlessStopped<T>(work: Promise<T>): Promise<T> {
    const stopped = (cause?: unknown): AbortedError =>
      new AbortedError(
        'the engine stopped before this finished: create a new engine and call it again',
        cause === undefined ? undefined : { cause },
      )
    return work.then(
      (r) => {
        if (this.#stopped) throw stopped()
        return r
      },
      (err: unknown) => {
        throw this.#stopped ? stopped(err) : err
      },
    )
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
    return rejecting(() => {
      this.#assertRunning()
      const checked = checkArgs.publishCollection(paths, opts)
      return this.#unlessStopped(this.#publishing.publishCollection(checked.list, checked.opts))
    })
  }

  /** Stops serving a content id, as bytes or text (a collection's manifest id stops its pack too), and announcing it. */
  unpublish(contentId: Uint8Array | string): void {
    const cid = contentIdArg(contentId)
    this.#publishing.unpublish(cid)
    void this.#routing?.withdraw(cid)
  }

  /**
   * Starts fetching `ticket` into `dest`; progress and the result come through the handle.
   * The transfer waits its turn (see `maxActiveTransfers`) as a plain record: its actor,
   * stream and files exist only once it is admitted. Its status is `resolving` meanwhile.
   * With the DHT (`dht`), a content id alone (`b…`, as `cidToString` writes it) does too: its
   * providers are found there first, and more while it runs.
   */
  fetch(ticketText: string, dest: string, opts: FetchOptions = {}): TransferHandle {
    this.#assertRunning()
    return this.#requests.fetch(ticketText, dest, checkArgs.fetch(ticketText, dest, opts))
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
    return rejecting(() => {
      this.#assertRunning()
      const checked = checkArgs.fetchCollection(ticketText, dest, opts)
      // Ended by stop too, which waits for it to give its folder's lock back.
      const stop = this.#stop.signal
      const signal = checked.signal === undefined ? stop : AbortSignal.any([checked.signal, stop])
      return this.#collections.add(this.#requests.fetchCollection(ticketText, dest, { ...checked, signal }))
    })
  }

  /**
   * Serves the verified chunks of a resumable `<dest>.part` (from an interrupted multi-peer
   * fetch: its journal and leaf sidecar) to others: partial seeding. The returned ticket names
   * this engine (with a secret of its own, unless `public`); `unpublish(cid)` stops it.
   */
  seed(dest: string, options: SeedOptions = {}): Promise<Seeded> {
    return this.#serve(
      'seed',
      dest,
      options,
      (d, o) => this.#publishing.seed(d, o),
      (r) => r.cid,
    )
  }

  /**
   * A fetch with `provide` done: its file served publicly and announced (announced already while
   * it was partial). A failure here fails the fetch: it was asked to provide.
   */
  async #provide(path: string, cid: Uint8Array, header: DescriptorHeader): Promise<void> {
    await this.#publishing.provide(path, cid, header, this.#stop.signal)
    // Not awaited (it never rejects): the first announcement settles when a DHT peer takes the
    // record or its query gives up, half a minute on a DHT with no other peer yet, and the
    // fetch is done before that.
    void this.#routing!.announce(cid)
  }

  /**
   * Cancels every fetch (a folder's too), waits for each to release its stream, files and
   * destination's lock, then stops serving and the node. Bounded whatever the peers do: a
   * fetch's stream is reset, and one finishing (its file already renamed) waits at most
   * `timeouts.closeMs` for its peer to close.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const metrics = this.#metrics?.server.close()
    // Listeners hear how every live session ended before the engine goes.
    this.#serving.events.stop()
    this.#gcAssist?.stop()
    const fetches = this.#fetches.stop()
    this.#stop.abort()
    await fetches
    // Ended by the abort (their file fetches by Fetches.stop): each gives its folder's lock back.
    await this.#collections.settled()
    await this.#sessions.close()
    // A seed under way has its destination's lock: once settled, closing the registry gives it back.
    await this.#publishing.settled()
    await this.#registry.closeAll()
    await this.#routing?.stop()
    await this.#network.stop()
    this.#buffers.destroy()
    await this.#pool.destroy()
    await metrics
  }

  #assertRunning(): void {
    if (this.#stopped) throw new AbortedError('the engine is stopped: create a new one')
  }
}
