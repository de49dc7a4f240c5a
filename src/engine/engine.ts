import { createHash, randomUUID } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { type ActorRefFrom, createActor, sendTo, setup, spawnChild, stopChild } from 'xstate'
import { AbortedError, type HaulError, InvalidArgumentError } from '../errors.ts'
import { Network } from '../net/network.ts'
import { PROTOCOL_ID } from '../protocol/messages.ts'
import { Slots } from '../util/slots.ts'
import { WorkerPool } from '../workers/pool.ts'
import { type EngineConfig, type EngineOptions, resolveEngineConfig } from './config.ts'
import { type FairQueue, fairLimiter, type Priority } from './fair-queue.ts'
import { type IndexResult, indexFile } from './indexer.ts'
import { MemoryBudget } from './memory-budget.ts'
import type { TransferProgress } from './progress.ts'
import { openPublished } from './publish.ts'
import { bucketFor, chainLimiters, unlimited } from './rate-limit.ts'
import { ContentRegistry } from './registry.ts'
import type { RetryInfo } from './retry.ts'
import { serveStream } from './server.ts'
import { openPartialSeed } from './swarm/partial.ts'
import { SwarmJob, type SwarmStats } from './swarm/swarm-job.ts'
import { decodeSwarmTicket, type Provider } from './swarm/ticket.ts'
import { encodeTicket } from './ticket.ts'
import { FetchJob, type FetchResult } from './transfer.ts'
import {
  type TransferJob,
  type TransferOutput,
  type TransferStatus,
  transferMachine,
} from './transfer-machine.ts'

export interface PublishOptions {
  signal?: AbortSignal
  onProgress?: (bytesDone: number, totalBytes: number) => void
}

export interface Published {
  /** Give this string to the receiver. */
  readonly ticket: string
  readonly index: IndexResult
}

export interface FetchOptions {
  signal?: AbortSignal
  onProgress?: (progress: TransferProgress) => void
  /** Called when a transient failure sends the transfer to `retrying` (before the backoff delay). */
  onRetry?: (info: RetryInfo) => void
  /** Share of download bandwidth under contention (see `priorityWeights`). @default 'normal' */
  priority?: Priority
  /** This transfer's own download limit, bytes per second. @default `limits.perTransferDownloadBytesPerSec` */
  maxBytesPerSec?: number
  /** More peers serving the same content, beside those the ticket names (a multi-peer fetch). @default none */
  providers?: readonly Provider[]
  /**
   * Fetch through the multi-peer path even with one provider (to add providers later with
   * `addProvider`). @default true when the ticket and `providers` name more than one peer
   */
  swarm?: boolean
}

/** A partial seed: the chunks of a resumable `<dest>.part` this engine now serves. */
export interface Seeded {
  readonly ticket: string
  readonly cid: Uint8Array
  /** Chunks verified and served. */
  readonly chunks: number
  readonly leafCount: number
}

export interface TransferHandle {
  readonly id: string
  /** Resolves when the file is whole and verified at `dest`; rejects with a HaulError otherwise. */
  readonly result: Promise<FetchResult>
  status(): TransferStatus
  progress(): TransferProgress | undefined
  cancel(): void
  /** Multi-peer fetches: use one more provider from now on. Throws InvalidArgumentError on a single-peer fetch. */
  addProvider(provider: Provider): void
  /** Multi-peer fetches: duplicates, corrupt chunks and per-peer figures so far; undefined for single-peer. */
  swarmStats(): SwarmStats | undefined
}

type EngineEvent =
  | { type: 'transfer.start'; id: string; job: TransferJob }
  | { type: 'transfer.cancel'; id: string }
  | { type: 'transfer.reap'; id: string }

/** One actor system per engine: every transfer machine is a child of this root. */
const engineMachine = setup({
  types: { events: {} as EngineEvent },
  actors: { transfer: transferMachine },
}).createMachine({
  id: 'haul-engine',
  on: {
    'transfer.start': {
      actions: spawnChild('transfer', {
        id: ({ event }) => event.id,
        input: ({ event }) => (event as Extract<EngineEvent, { type: 'transfer.start' }>).job,
      }),
    },
    'transfer.cancel': { actions: sendTo(({ event }) => event.id, { type: 'cancel' }) },
    'transfer.reap': { actions: stopChild(({ event }) => event.id) },
  },
})

/**
 * A haul engine: one libp2p node, one worker pool and one memory budget shared
 * by everything it publishes and fetches.
 */
export class Engine {
  readonly config: EngineConfig
  readonly network: Network
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
  readonly #registry = new ContentRegistry()
  readonly #stop = new AbortController()
  readonly #system = createActor(engineMachine)
  readonly #transfers = new Map<string, FetchJob | SwarmJob>()
  /** Download bandwidth, divided between transfers by priority weight (fair even when unlimited). */
  readonly #downloads: FairQueue<void>
  /** Per peer: which fetches may run now; the rest wait in FIFO order. */
  readonly #admission = new Map<string, Slots>()
  #stopped = false

  private constructor(config: EngineConfig, network: Network, pool: WorkerPool, budget: MemoryBudget) {
    this.config = config
    this.network = network
    this.pool = pool
    this.budget = budget
    const download = bucketFor(config.limits.downloadBytesPerSec, config.limits.burstBytes)
    this.#downloads = fairLimiter(download ?? unlimited, { weights: config.priorityWeights })
    this.#system.start()
  }

  static async create(options: EngineOptions = {}): Promise<Engine> {
    const config = resolveEngineConfig(options)
    const budget = new MemoryBudget({ limit: config.memoryBudget })
    const pool = new WorkerPool({ threads: config.workers })
    let network: Network | undefined
    try {
      network = await Network.create({
        listen: config.listen,
        ...(config.dataDir === undefined ? {} : { dataDir: config.dataDir }),
        connectTimeoutMs: config.timeouts.connectMs,
        ...config.network,
      })
      const engine = new Engine(config, network, pool, budget)
      const upload = bucketFor(config.limits.uploadBytesPerSec, config.limits.burstBytes)
      await network.handle(
        PROTOCOL_ID,
        (stream) =>
          serveStream(stream, {
            registry: engine.#registry,
            pool,
            budget,
            codec: config.codec,
            limits: config.server,
            signal: engine.#stop.signal,
            ...(upload === undefined ? {} : { uploadLimiter: upload }),
          }),
        { idleTimeoutMs: config.timeouts.idleMs },
      )
      return engine
    } catch (err) {
      await network?.stop()
      await pool.destroy()
      throw err
    }
  }

  get peerId(): string {
    return this.network.peerId
  }

  get addresses(): string[] {
    return this.network.addresses
  }

  /** Indexes `path`, serves it, and returns the ticket a receiver needs. */
  async publish(path: string, opts: PublishOptions = {}): Promise<Published> {
    this.#assertRunning()
    const file = resolvePath(path)
    const index = await indexFile(file, {
      chunking: this.config.chunking,
      pool: this.pool,
      budget: this.budget,
      ...(this.config.dataDir === undefined
        ? {}
        : { descriptorPath: await storePath(this.config.dataDir, file) }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
    })
    this.#registry.add(await openPublished(file, index))
    const ticket = encodeTicket({ cid: index.cid, peerId: this.peerId, addrs: this.addresses })
    return { ticket, index }
  }

  unpublish(cid: Uint8Array): void {
    this.#registry.unpublish(cid)
  }

  /** Starts fetching `ticket` into `dest`; progress and the result come through the handle. */
  fetch(ticketText: string, dest: string, opts: FetchOptions = {}): TransferHandle {
    this.#assertRunning()
    const decoded = decodeSwarmTicket(ticketText)
    const providers = [...decoded.providers]
    for (const p of opts.providers ?? []) if (!providers.some((q) => q.peerId === p.peerId)) providers.push(p)
    const id = randomUUID()
    const flow = this.#downloads.flow(opts.priority ?? 'normal')
    const ticket = { cid: decoded.cid, peerId: providers[0]!.peerId, addrs: providers[0]!.addrs }
    const limiter = chainLimiters(
      bucketFor(opts.maxBytesPerSec ?? this.config.limits.perTransferDownloadBytesPerSec),
      flow,
    )
    const swarm = opts.swarm ?? providers.length > 1
    const job = swarm
      ? this.#swarmJob({ cid: decoded.cid, providers }, resolvePath(dest), limiter, opts)
      : new FetchJob(
          {
            network: this.network,
            pool: this.pool,
            budget: this.budget,
            limits: this.config.fetch,
            timeouts: this.config.timeouts,
            maxFrame: this.config.server.maxFrame,
            retry: this.config.retry,
            journal: this.config.journal,
            limiter,
            admit: (signal) => this.#admit(ticket.peerId, signal),
          },
          ticket,
          resolvePath(dest),
          { onProgress: opts.onProgress, onRetry: opts.onRetry },
        )
    this.#transfers.set(id, job)
    this.#system.send({ type: 'transfer.start', id, job })
    const actor = this.#system.getSnapshot().children[id] as ActorRefFrom<typeof transferMachine>
    const cancel = (): void => {
      // A finished transfer has been reaped from the actor system: nothing to cancel.
      if (this.#transfers.has(id)) this.#system.send({ type: 'transfer.cancel', id })
    }
    opts.signal?.addEventListener('abort', cancel, { once: true })
    const result = new Promise<FetchResult>((resolve, reject) => {
      const settle = async (output: TransferOutput): Promise<void> => {
        opts.signal?.removeEventListener('abort', cancel)
        flow.close()
        await job.cleanup()
        this.#transfers.delete(id)
        this.#system.send({ type: 'transfer.reap', id })
        if (output.status === 'done') resolve(job.result())
        else reject(output.error ?? new AbortedError('the transfer was cancelled'))
      }
      const sub = actor.subscribe({
        next: (snap) => {
          if (snap.status !== 'done') return
          sub.unsubscribe()
          void settle(snap.output)
        },
        error: (err) => void settle({ status: 'failed', error: err as HaulError }),
      })
      const now = actor.getSnapshot()
      if (now.status === 'done') {
        sub.unsubscribe()
        void settle(now.output)
      }
    })
    if (opts.signal?.aborted) cancel()
    return {
      id,
      result,
      status: () => (actor.getSnapshot().value as TransferStatus) ?? 'failed',
      progress: () => job.progress(),
      cancel,
      addProvider: (p) => {
        if (!(job instanceof SwarmJob)) {
          throw new InvalidArgumentError('a single-peer fetch takes no providers: fetch with { swarm: true }')
        }
        job.addProvider(p)
      },
      swarmStats: () => (job instanceof SwarmJob ? job.stats() : undefined),
    }
  }

  /**
   * Serves the verified chunks of a resumable `<dest>.part` (from an interrupted multi-peer
   * fetch: its journal and leaf sidecar) to others: partial seeding. The returned ticket names
   * this engine; `unpublish(cid)` stops it.
   */
  async seed(dest: string): Promise<Seeded> {
    this.#assertRunning()
    const { content, chunks, leafCount } = await openPartialSeed(resolvePath(dest), this.config.journal)
    if (!this.#registry.addIfAbsent(content)) {
      await content.reader.close()
      throw new InvalidArgumentError('this engine already serves that content id')
    }
    const ticket = encodeTicket({ cid: content.cid, peerId: this.peerId, addrs: this.addresses })
    return { ticket, cid: content.cid, chunks, leafCount }
  }

  #swarmJob(
    ticket: { cid: Uint8Array; providers: Provider[] },
    dest: string,
    limiter: ReturnType<typeof chainLimiters>,
    opts: FetchOptions,
  ): SwarmJob {
    const c = this.config
    return new SwarmJob(
      {
        network: this.network,
        pool: this.pool,
        budget: this.budget,
        limits: c.fetch,
        timeouts: c.timeouts,
        maxFrame: c.server.maxFrame,
        retry: c.retry,
        journal: c.journal,
        swarm: c.swarm,
        limiter,
        share: (content) => {
          if (!this.#registry.addIfAbsent(content)) return () => {}
          return () => this.#registry.removeIfSame(content)
        },
      },
      ticket,
      dest,
      { onProgress: opts.onProgress, onRetry: opts.onRetry },
    )
  }

  get activeTransfers(): number {
    return this.#transfers.size
  }

  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    for (const id of this.#transfers.keys()) this.#system.send({ type: 'transfer.cancel', id })
    this.#stop.abort()
    await Promise.allSettled([...this.#transfers.values()].map((j) => j.cleanup()))
    this.#system.stop()
    await this.#registry.closeAll()
    await this.network.stop()
    await this.pool.destroy()
  }

  /** Waits for one of the peer's active-transfer places; resolves to the function that gives it back. */
  async #admit(peerId: string, signal: AbortSignal): Promise<() => void> {
    let slots = this.#admission.get(peerId)
    if (slots === undefined) {
      slots = new Slots(this.config.maxActiveTransfersPerPeer, this.config.maxQueuedTransfersPerPeer)
      this.#admission.set(peerId, slots)
    }
    const held = slots
    try {
      await held.acquire({ signal, what: `transfers from peer ${peerId}` })
    } catch (err) {
      if (held.idle) this.#admission.delete(peerId)
      throw err
    }
    let released = false
    return () => {
      if (released) return
      released = true
      held.release()
      if (held.idle && this.#admission.get(peerId) === held) this.#admission.delete(peerId)
    }
  }

  #assertRunning(): void {
    if (this.#stopped) throw new AbortedError('the engine is stopped: create a new one')
  }
}

/** Descriptors of published files live in the data folder, named by a hash of the file's path. */
async function storePath(dataDir: string, file: string): Promise<string> {
  const dir = resolvePath(dataDir, 'descriptors')
  await mkdir(dir, { recursive: true })
  return resolvePath(dir, `${createHash('sha256').update(file).digest('hex').slice(0, 32)}.haul`)
}
