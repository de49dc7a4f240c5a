import { randomBytes } from 'node:crypto'
import { resolve as resolvePath } from 'node:path'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { AbortedError, DestinationBusyError, InvalidArgumentError, isHaulError } from '../errors.ts'
import type { FetchJob } from '../fetch/fetch-job.ts'
import { type LinkDeps, servesContent } from '../fetch/peer-link.ts'
import type { RecentPeers } from '../fetch/recent-peers.ts'
import { markChanged } from '../fetch/resume.ts'
import type { MetricsTally } from '../metrics/tally.ts'
import type { Network } from '../net/network.ts'
import { raceSignal } from '../net/peer-addr.ts'
import { Admission, type AdmissionPlace } from '../resources/admission.ts'
import type { BudgetShare } from '../resources/budget-share.ts'
import type { BufferRecycler } from '../resources/buffer-recycler.ts'
import { type FairQueue, fairLimiter } from '../resources/fair-queue.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { bucketFor, chainLimiters, type TokenBucket, unlimited } from '../resources/rate-limit.ts'
import type { ContentRouting } from '../routing/content-routing.ts'
import type { AskProvider, ProviderSearch } from '../routing/provider-search.ts'
import type { ContentRegistry } from '../serve/registry.ts'
import type { SessionPool } from '../session/session-pool.ts'
import { DestinationLock } from '../storage/dest-lock.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import { type Provider, presentingTicket, type SwarmTicket } from '../ticket/multi-ticket.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import type { TransferStatus } from '../transfer/transfer-machine.ts'
import { outputOf, type TransferActor, TransferSystem } from '../transfer/transfer-system.ts'
import type { FetchResult } from '../transfer/transfer-types.ts'
import { Pending } from '../util/pending.ts'
import type { WorkerPool } from '../workers/pool.ts'
import { checkProvider } from './api-args.ts'
import type { InternalFetchOptions, TransferHandle } from './api-types.ts'
import type { EngineConfig } from './config.ts'
import { linkDeps, newFetchJob } from './fetch-job-setup.ts'

/** What an engine's fetches use of it. */
export interface FetchesDeps {
  readonly config: EngineConfig
  readonly network: Network
  readonly pool: WorkerPool
  /** The whole budget, for indexing a destination to compare it. */
  readonly budget: MemoryBudget
  /** What fetches lease through: the budget less what is kept for serving. */
  readonly fetchBudget: BudgetShare
  readonly buffers: BufferRecycler
  readonly sessions: SessionPool
  /** When each provider was last heard from, by any fetch: a fetch that never reached it itself reads it (FetchRetry). */
  readonly recentPeers: RecentPeers
  readonly directWrites: DirectWriteSlots | undefined
  /** Where a fetch that seeds registers what it has verified (partial seeding). */
  readonly registry: ContentRegistry
  /** The metrics counters, once the endpoint runs. */
  readonly tally: () => MetricsTally | undefined
  /** The DHT, when the engine runs one. */
  readonly routing: () => ContentRouting | undefined
  /** Serves and announces a file a `provide` fetch completed. */
  readonly provide: (path: string, cid: Uint8Array, header: DescriptorHeader) => Promise<void>
}

/**
 * The providers a fetch of `decoded` asks: the ticket's and those given (`extra`, presented
 * with the ticket's secret), never this engine (`self`): it already has what it publishes.
 */
export function providersFor(
  decoded: SwarmTicket,
  self: string,
  extra: readonly Provider[] | undefined,
): Provider[] {
  const providers = decoded.providers.filter((p) => p.peerId !== self)
  const beside = presentingTicket(decoded)
  for (const p of extra ?? [])
    if (p.peerId !== self && !providers.some((q) => q.peerId === p.peerId)) providers.push(beside(p))
  return providers
}

/** `provide` on an engine without the DHT. */
export function provideNeedsDht(): InvalidArgumentError {
  return new InvalidArgumentError('provide announces on the DHT: create the engine with dht (haul --dht)')
}

/** A ticket naming providers, all of them this engine, none given beside it. */
export function onlySelf(): InvalidArgumentError {
  return new InvalidArgumentError(
    'this ticket names only this engine (it published the content): the file is already here; fetch it on another engine',
  )
}

function busyHere(path: string): DestinationBusyError {
  return new DestinationBusyError(
    `${path} is being written by another fetch of this engine: wait for it to finish (waitIfBusy), or choose another destination`,
    { holder: 'another fetch of this engine' },
  )
}

/**
 * An engine's fetches: each waits its turn (per peer and engine-wide) as a plain record, then
 * runs as a FetchJob in the transfer system, holding its destination's lock; `stop` cancels
 * them all and waits until each has released its streams and files. What a job is built with
 * is fetch-job-setup.ts.
 */
export class Fetches {
  readonly #deps: FetchesDeps
  readonly #system = new TransferSystem()
  readonly #transfers = new Map<string, FetchJob>()
  /** The engine's download limit (limits.downloadBytesPerSec), shared by priority through #downloads. */
  readonly #download: TokenBucket | undefined
  /** Download bandwidth, divided between transfers by priority weight (fair even when unlimited). */
  readonly #downloads: FairQueue<void>
  /** Which fetches may run now (per peer and engine-wide); the rest wait in FIFO order. */
  readonly admission: Admission
  /** Per destination path, the fetch writing it (settles when that fetch does). */
  readonly #writing = new Map<string, Promise<void>>()
  /** Fetches waiting for admission: cancelling one aborts its wait. */
  readonly #queued = new Map<string, AbortController>()
  /**
   * Every fetch's result until it settles: what `stop` waits for. A fetch holds its
   * destination's lock past its job's cleanup (it gives it back last), and one cancelled while
   * taking the lock holds it until that is done; neither is a job stop could wait for.
   */
  readonly #runs = new Pending<FetchResult>()
  /**
   * Transfer ids: this engine's random tag and a count. A UUID per fetch costs a tree of ~11
   * V8 cons strings, ~460 bytes of a queued fetch's ~4,600.
   */
  readonly #idTag = randomBytes(6).toString('hex')
  #fetches = 0
  #stopped = false

  constructor(deps: FetchesDeps) {
    this.#deps = deps
    const { config } = deps
    this.#download = bucketFor(config.limits.downloadBytesPerSec, config.limits.burstBytes)
    this.#downloads = fairLimiter(this.#download ?? unlimited, { weights: config.priorityWeights })
    this.admission = new Admission({
      maxActive: config.maxActiveTransfers,
      maxActivePerPeer: config.maxActiveTransfersPerPeer,
      maxQueuedPerPeer: config.maxQueuedTransfersPerPeer,
    })
  }

  /** Fetches queued or running. */
  get unfinished(): number {
    return this.#transfers.size + this.#queued.size
  }

  /** Asks a peer whether it serves `cid` (ProviderSearch's neighbours); its session is kept for the fetch. */
  asker(cid: Uint8Array): AskProvider {
    const deps: LinkDeps = { cid, ...linkDeps(this.#deps) }
    return (p, signal) => servesContent(deps, p, signal)
  }

  /** `search`: the providers are found on the DHT (a fetch by content id), more as it runs. */
  start(
    decoded: SwarmTicket,
    dest: string,
    opts: InternalFetchOptions,
    search?: ProviderSearch,
  ): TransferHandle {
    if (opts.provide === true && this.#deps.routing() === undefined) throw provideNeedsDht()
    const providers = providersFor(decoded, this.#deps.network.peerId, opts.providers)
    const beside = presentingTicket(decoded)
    if (providers.length === 0 && search === undefined && decoded.providers.length > 0) throw onlySelf()
    const swarm = opts.swarm ?? (search !== undefined || opts.provide === true || providers.length > 1)
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
      if (this.#stopped) throw new AbortedError('the engine is stopped')
      const flow = this.#downloads.flow(opts.priority ?? 'normal')
      const own = bucketFor(opts.maxBytesPerSec ?? this.#deps.config.limits.perTransferDownloadBytesPerSec)
      const limiter = chainLimiters(own, flow)
      const limits = { limiter, maxRequestBytes: smallestBurst(own, this.#download) }
      job = newFetchJob(this.#deps, { cid: decoded.cid, providers }, path, limits, place, swarm, opts, search)
      const admitted = job
      const looking = new AbortController()
      void search?.keepLooking((p) => admitted.addProvider(p), looking.signal)
      this.#transfers.set(id, admitted)
      const running = this.#system.spawn(id, admitted)
      actor = running
      this.#deps.tally()?.started(id, {
        status: () => running.getSnapshot().value as TransferStatus,
        progress: () => admitted.progress(),
        stats: () => admitted.stats(),
      })
      const output = await outputOf(running).finally(() => looking.abort())
      flow.close()
      if (output.status === 'done') place.completed()
      await admitted.cleanup()
      // Read last once cleaned up: until then it is unfinished, and counted in its final state.
      this.#deps.tally()?.settled(id)
      this.#transfers.delete(id)
      this.#system.reap(id)
      if (output.status !== 'done') {
        if (opts.provide === true) void this.#deps.routing()?.withdraw(decoded.cid)
        const failure = output.error ?? new AbortedError('the transfer was cancelled')
        // Under the destination's lock still: nothing else writes there.
        if (isHaulError(failure) && failure.code === 'CONTENT_CHANGED') await markChanged(path, decoded.cid)
        throw failure
      }
      const result = admitted.result()
      if (opts.provide === true) await this.#deps.provide(result.path, decoded.cid, admitted.header!)
      return result
    }
    const before = this.#writing.get(path)
    const run = async (): Promise<FetchResult> => {
      let place: AdmissionPlace | undefined
      let lock: DestinationLock | undefined
      try {
        try {
          // Started after stop (a collection's next file): it takes no lock stop would not wait for.
          if (this.#stopped) throw new AbortedError('the engine is stopped')
          if (before !== undefined) {
            if (opts.waitIfBusy !== true) throw busyHere(path)
            opts.onWait?.('another fetch of this engine')
            await raceSignal(before, waiting.signal)
          }
          if (search !== undefined && providers.length === 0)
            providers.push(...(await search.first(waiting.signal)))
          // A multi-peer fetch takes its turn with its first provider.
          place = await this.admission.acquire(providers[0]!.peerId, waiting.signal)
          lock = await DestinationLock.acquire(path, {
            wait: opts.waitIfBusy === true,
            signal: waiting.signal,
            ...(opts.onWait === undefined ? {} : { onWait: opts.onWait }),
          })
          // A cancel while the lock was being taken (it only checks its signal while waiting):
          // no actor would hear it, and the fetch would run to the end.
          if (waiting.signal.aborted) throw waiting.signal.reason
        } catch (err) {
          // Cancelled or stopped while waiting: fail with that reason, as a running transfer would.
          throw waiting.signal.aborted && isHaulError(waiting.signal.reason) ? waiting.signal.reason : err
        } finally {
          this.#queued.delete(id)
        }
        return await runJob(place)
      } finally {
        try {
          await lock?.release()
        } finally {
          // A job gives its place back itself, once its streams and files are closed (FetchJob
          // cleanup); this gives it back on every other path, such as an option refused (an
          // unknown priority, a bad rate) after the place was taken and before a job held it.
          // A place kept here is lost for good: the peer's line, once shrunk by failed links,
          // would admit none of its fetches again. Releasing twice is harmless.
          place?.release()
        }
      }
    }
    let writing: Promise<void> | undefined
    const result = run().finally(() => {
      // Before `result` settles: a fetch to the same path started as soon as the caller sees
      // the outcome (a retry after a cancel) does not find this one still writing.
      if (writing !== undefined && this.#writing.get(path) === writing) this.#writing.delete(path)
      opts.signal?.removeEventListener('abort', cancel)
    })
    void this.#runs.add(result)
    const tally = this.#deps.tally()
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
    // Settled, the progress is what it was at the end (its rate and elapsed time stop there).
    let last: TransferProgress | undefined
    // Failed before its actor ran (waiting, or refused once admitted): status `failed`.
    let failed = false
    const freeze = (): void => {
      last = job?.progress()
    }
    result.then(freeze, () => {
      failed = true
      freeze()
    })
    return {
      id,
      result,
      status: () => {
        if (actor === undefined) {
          if (waiting.signal.aborted) return 'cancelled'
          return failed ? 'failed' : 'resolving'
        }
        return (actor.getSnapshot().value as TransferStatus) ?? 'failed'
      },
      progress: () => last ?? job?.progress(),
      cancel,
      addProvider: (added) => {
        checkProvider('addProvider: the provider', added)
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
   * Cancels every fetch (at once, before the returned promise's first wait) and waits for each
   * to settle: its stream and files released, its destination's lock given back. Waiting for
   * the jobs' cleanup alone left locks behind, given back after stop resolved, or never in an
   * engine thread, which ends right after stop.
   */
  async stop(): Promise<void> {
    this.#stopped = true
    for (const id of this.#transfers.keys()) this.#system.cancel(id)
    const stopped = new AbortedError('the engine is stopped')
    for (const waiting of this.#queued.values()) waiting.abort(stopped)
    this.admission.rejectWaiters(stopped)
    // Until none is left: one started meanwhile (a collection's next file) fails at once.
    await this.#runs.settled()
    this.#system.stop()
  }
}

/** The smallest burst of a fetch's rate limits, or undefined when none applies. */
function smallestBurst(...buckets: Array<TokenBucket | undefined>): number | undefined {
  const bursts = buckets.flatMap((b) => (b === undefined ? [] : [b.burst]))
  return bursts.length === 0 ? undefined : Math.min(...bursts)
}
