import type { DescriptorHeader } from '../descriptor/header.ts'
import { type HaulError, InternalError, NoProviderError, StreamClosedError } from '../errors.ts'
import type { AdmissionPlace } from '../resources/admission.ts'
import type { PublishedContent } from '../serve/registry.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import type { JournalOptions } from '../storage/journal-options.ts'
import type { Provider, SwarmTicket } from '../ticket/multi-ticket.ts'
import { ProgressMeter, type TransferProgress } from '../transfer/progress.ts'
import type { RetryInfo, RetryOptions } from '../transfer/retry.ts'
import type { TransferJob } from '../transfer/transfer-machine.ts'
import type { FetchResult, SwarmStats } from '../transfer/transfer-types.ts'
import { type CoordinatorDeps, FetchCoordinator } from './coordinator.ts'
import { type DestinationPolicy, holdsContent, type PresentState, presentState } from './destination.ts'
import { FetchRetry } from './fetch-retry.ts'
import {
  assertComplete,
  type FetchLocal,
  type LocalTransfer,
  openFetchLocal,
  ProgressThrottle,
  transferResult,
} from './local-transfer.ts'
import { partialContent } from './partial-seed.ts'
import { ProviderSet } from './provider-set.ts'
import type { Rehasher } from './rehash.ts'
import type { ResumeInfo } from './resume.ts'
import { SwarmScheduler } from './scheduler.ts'

export interface FetchJobDeps extends Omit<CoordinatorDeps, 'cid'> {
  readonly journal: JournalOptions
  /** Staging memory for O_DIRECT chunk writes (undefined: buffered writes). */
  readonly directWrites?: DirectWriteSlots | undefined
  /**
   * Serves `content` (partial seeding) until the returned function is called. Without it the
   * fetch keeps no leaf sidecar and serves nothing of what it has so far.
   */
  readonly share?: ((content: PublishedContent) => () => void) | undefined
  /** The transfer's admission place (the engine admitted it before creating the job): told of failed links and verified chunks, given back in cleanup. */
  readonly place?: AdmissionPlace | undefined
  /** What to do with a file already at the destination. */
  readonly destination: DestinationPolicy
  /**
   * The destination is an intermediate file its caller removes soon after (a collection's
   * pack): buffered writes, and no fsync when it is renamed into place, so its bytes need never
   * reach the disk. The journal still syncs what it records.
   */
  readonly scratch?: boolean | undefined
  /** Sees the verified descriptor header before anything is written; throws to refuse the content. */
  readonly accept?: ((header: DescriptorHeader) => void) | undefined
  /**
   * The providers come from a search that goes on (a fetch by content id on the DHT): true while
   * it may still find more. Until then, every provider lacking the content (CONTENT_NOT_FOUND) or
   * none left (NO_PROVIDER) is a failure to retry, with the providers found meanwhile.
   */
  readonly stillLooking?: (() => boolean) | undefined
}

export interface FetchJobHooks {
  onProgress?: (p: TransferProgress) => void
  onRetry?: (info: RetryInfo) => void
  /** What the destination held, once looked at, when not a fresh start (FetchOptions.onResume). */
  onResume?: (resume: ResumeInfo, progress: TransferProgress) => void
  /** Chunk `index` is verified and written to `<dest>.part` (this run's chunks only). */
  onChunk?: (index: number) => void
}

/** The part file, journal and meter, plus the verified-leaf table and the leaf sidecar (when seeding). */
type Local = LocalTransfer & FetchLocal

/**
 * The receiving side of one transfer, from one provider or many, as the steps the transfer
 * machine runs (retries, cancel, finalize). A ticket naming one peer is a fetch with one
 * provider. `resolve` reaches at least one provider and opens `<dest>.part` and its journal
 * (and, when the fetch seeds what it has, the leaf sidecar); `fetchChunks` runs the
 * FetchCoordinator over every provider not dropped; a transfer retry (all providers lost)
 * reconnects to all of them (the retry rule's questions: FetchRetry). Local state outlives
 * sessions: after a retry, fetching continues from the journal's chunk set. The job owns its
 * sessions, files and admission place, and releases them in `cleanup` whatever state the
 * machine ended in.
 */
export class FetchJob implements TransferJob {
  readonly cid: Uint8Array
  readonly dest: string
  readonly retry: RetryOptions
  readonly #deps: FetchJobDeps
  readonly #hooks: FetchJobHooks
  readonly #progress: ProgressThrottle
  readonly #providers = new ProviderSet()
  readonly #retryRule: FetchRetry
  #local: Local | undefined
  /** Set when the destination already held the content: nothing is fetched or written. */
  #present: PresentState | undefined
  /** Follows the check of a file already at the destination (holdsContent), while it runs. */
  #checking: ProgressMeter | undefined
  #rehash: Rehasher | undefined
  #resume: ResumeInfo | undefined
  #fetcher: FetchCoordinator | undefined
  #sched: SwarmScheduler | undefined
  #unshare: (() => void) | undefined
  #retries = 0
  #duplicateBytes = 0
  #corrupt = 0
  #committed = false
  /** The step the machine runs or last ran, settled either way (see cleanup). */
  #running: Promise<void> | undefined
  #cleanup: Promise<void> | undefined

  constructor(deps: FetchJobDeps, ticket: SwarmTicket, dest: string, hooks: FetchJobHooks = {}) {
    this.#deps = deps
    this.cid = ticket.cid
    this.dest = dest
    this.retry = deps.retry
    this.#hooks = hooks
    this.#progress = new ProgressThrottle(hooks.onProgress)
    this.#retryRule = new FetchRetry(deps.retry, this.#providers, deps)
    for (const p of ticket.providers) this.addProvider(p)
  }

  get header(): DescriptorHeader | undefined {
    return (this.#local ?? this.#present)?.header
  }

  /** What was found at the destination; undefined until the first provider gave the header. */
  get resume(): ResumeInfo | undefined {
    return this.#resume
  }

  /** Adds a provider; a running transfer starts using it at once. */
  addProvider(p: Provider): void {
    const link = this.#providers.add(p)
    if (link !== undefined) this.#fetcher?.addLink(link)
  }

  get retries(): number {
    return this.#retries
  }

  progress(): TransferProgress | undefined {
    return ((this.#local ?? this.#present)?.meter ?? this.#checking)?.snapshot()
  }

  /** Verified chunks, plus signs the providers are serving (FetchRetry.progressMark). */
  progressMark(): number {
    return this.#retryRule.progressMark(this.#local?.journal.chunks ?? 0)
  }

  stats(): SwarmStats {
    const sched = this.#sched
    return {
      duplicateBytes: this.#duplicateBytes + (sched?.duplicateBytes ?? 0),
      corruptChunks: this.#corrupt + (this.#fetcher?.corruptChunks ?? 0),
      peers: this.#providers.stats(),
    }
  }

  /** The retry rule's questions: FetchRetry. */
  canRetry(error: HaulError): boolean {
    return this.#retryRule.canRetry(error)
  }

  attemptLimit(error: HaulError): number {
    return this.#retryRule.attemptLimit(error)
  }

  exhausted(last: HaulError, _attempts: number): HaulError | undefined {
    return this.#retryRule.exhausted(last)
  }

  keepsAnything(): boolean {
    return (this.#local?.journal.chunks ?? 0) > 0
  }

  onRetry(info: RetryInfo): void {
    this.#retries++
    this.#deps.place?.congested()
    this.#providers.reset(info.error)
    this.#hooks.onRetry?.(info)
  }

  resolve(signal: AbortSignal): Promise<void> {
    return this.#step(this.#resolve(signal))
  }

  fetchChunks(signal: AbortSignal): Promise<void> {
    return this.#step(this.#fetchChunks(signal))
  }

  finalize(signal: AbortSignal): Promise<void> {
    return this.#step(this.#finalize(signal))
  }

  #step(p: Promise<void>): Promise<void> {
    this.#running = p.catch(() => {})
    return p
  }

  async #resolve(signal: AbortSignal): Promise<void> {
    const deps = { ...this.#deps, cid: this.cid }
    const candidates = this.#providers.candidates()
    if (candidates.length === 0) throw new NoProviderError('every provider was dropped for misbehaving')
    // The first provider to answer is enough to start; the others keep connecting in the background.
    const header = await Promise.any(
      candidates.map((l) =>
        l.connect(deps, signal).catch((err: HaulError) => {
          l.drop(err)
          // A node that does not speak haul never will: it is not asked again in this fetch.
          if (err.code === 'UNSUPPORTED_VERSION') l.banned ??= err
          throw err
        }),
      ),
    ).catch((err: AggregateError) => {
      throw (err.errors[0] as HaulError | undefined) ?? new StreamClosedError('no provider answered')
    })
    this.#retryRule.contentSeen = true
    this.#deps.accept?.(header)
    if (this.#local === undefined && this.#present === undefined) {
      this.#checking = new ProgressMeter(header.totalSize, header.leafCount)
      const check = { meter: this.#checking, report: (force: boolean) => this.#report(force) }
      const held = await holdsContent(
        this.dest,
        this.cid,
        header,
        this.#deps.destination,
        signal,
        check,
      ).finally(() => {
        this.#checking = undefined
      })
      if (held) {
        this.#present = presentState(header)
        this.#resume = this.#present.resume
      } else await this.#openLocal(header)
      const local = (this.#local ?? this.#present)!
      if (this.#resume!.mode !== 'fresh') this.#hooks.onResume?.(this.#resume!, local.meter.snapshot())
    }
    this.#report(true)
  }

  async #fetchChunks(signal: AbortSignal): Promise<void> {
    if (this.#present !== undefined) return
    const local = this.#ready()
    const { header, journal } = local
    const deps = { ...this.#deps, cid: this.cid }
    let failed = true
    try {
      if (this.#rehash !== undefined) {
        const link = this.#providers.up()
        if (link === undefined) throw new StreamClosedError('no provider connected')
        await this.#rehash.run(link.context(deps), signal, (force) => this.#report(force))
        this.#rehash = undefined
        this.#resume = { ...this.#resume!, chunksKept: journal.chunks, bytesKept: journal.bytes }
      }
      const { limits, swarm, budget } = this.#deps
      const maxChunk = header.chunking.kind === 'fixed' ? header.chunking.size : header.chunking.maxSize
      // Scores and in-flight state start afresh each run; bans (on the links) persist.
      this.#absorb()
      const sched = new SwarmScheduler({
        leafCount: header.leafCount,
        windowChunks: swarm.windowChunks,
        windowBytes: Math.min(limits.windowBytes, Math.floor(budget.limit / 2)),
        minPipelineBytes: Math.min(limits.windowBytes, 2 * maxChunk),
        endgamePeers: swarm.endgamePeers,
        maxPeerFailures: swarm.maxPeerFailures,
        // Fetches of one content that start together spread out, so they can serve each other.
        tieSeed: (Math.random() * 2 ** 32) >>> 0 || 1,
      })
      for (let i = 0; i < header.leafCount; i++) if (journal.has(i)) sched.markDone(i)
      this.#sched = sched
      this.#fetcher = new FetchCoordinator(deps, local, sched, this.#providers.links, (index) => {
        this.#deps.place?.chunkVerified()
        this.#hooks.onChunk?.(index)
        this.#report(false)
      })
      const stopArriving = this.#progress.watchArriving(
        local.meter,
        () => this.#providers.arrivingBytes(),
        () => this.#report(false),
      )
      try {
        await this.#fetcher.run(signal)
      } finally {
        stopArriving()
      }
      failed = false
    } finally {
      // Whatever happened, what was verified and written so far becomes durable now.
      const flushed = journal.flush()
      if (failed) await flushed.catch(() => {})
      else await flushed
    }
  }

  async #finalize(_signal: AbortSignal): Promise<void> {
    if (this.#present === undefined) {
      const { header, part, journal, meter, leaves } = this.#ready()
      assertComplete(header, journal, meter)
      // Stop serving from the part file before it is renamed and closed.
      this.#unshare?.()
      this.#unshare = undefined
      await part.commit({ sync: this.#deps.scratch !== true, replace: this.#deps.destination.overwrite })
      this.#committed = true
      // After the rename: a crash in between leaves a journal with no part file, which the next fetch discards.
      await journal.remove()
      await leaves?.close({ remove: true })
    }
    // Idle sessions go to the pool for the next transfer to their peer; the rest are reset (a
    // graceful close waits on every peer, and a stalled one never answers).
    const done = new StreamClosedError('transfer complete')
    this.#providers.release(this.#deps.sessions, done)
    this.#report(true)
  }

  result(): FetchResult & { swarm: SwarmStats } {
    const { header, meter } = this.#present ?? this.#ready()
    return {
      ...transferResult(this.dest, { header, meter, resume: this.#resume! }, this.#retries),
      swarm: this.stats(),
    }
  }

  /**
   * Stops sharing, ends every provider's session and closes the files (kept unless the transfer
   * completed), once the step the machine left has ended: a cancel leaves it running with its
   * signal aborted, and it ends without waiting on any peer; then nothing writes to a file closed
   * here, nor opens one after. Called by both the transfer's end and `engine.stop()`: the second
   * call shares the first.
   */
  cleanup(): Promise<void> {
    this.#cleanup ??= this.#release()
    return this.#cleanup
  }

  async #release(): Promise<void> {
    try {
      await this.#running
      this.#unshare?.()
      this.#unshare = undefined
      // What a completed fetch kept went to the pool already; the rest are closed, what they still
      // asked cancelled first: a sender sees a receiver that stopped fetching, not one that cut
      // it off, and the engine's stop waits for those closes.
      this.#providers.retire(this.#deps.sessions, new StreamClosedError('the transfer ended'))
      if (this.#committed || this.#local === undefined) return
      // The run is over: nothing writes the part file any more. Its mtime and ctime seal the
      // journal, unless a check after a crash stopped short of chunks the journal kept: unsealed,
      // the next run checks them (a sealed journal is trusted).
      const stamp = this.#rehash?.keptUnchecked === true ? undefined : await this.#local.part.sealStamp()
      await this.#local.journal.close(stamp)
      await this.#local.part.close()
      await this.#local.leaves?.close()
    } finally {
      // Only once the streams and files are closed: the place bounds what is open.
      this.#deps.place?.release()
    }
  }

  /** Carries one run's counters into the totals before a new scheduler replaces it. */
  #absorb(): void {
    this.#duplicateBytes += this.#sched?.duplicateBytes ?? 0
    this.#corrupt += this.#fetcher?.corruptChunks ?? 0
  }

  async #openLocal(header: DescriptorHeader): Promise<void> {
    const share = this.#deps.share
    const local = await openFetchLocal(this.dest, this.cid, header, {
      ...this.#deps,
      overwrite: this.#deps.destination.overwrite,
      seed: share !== undefined,
    })
    this.#local = local
    this.#resume = local.resume
    this.#rehash = local.rehasher
    const { part, journal, headerBytes, leaves } = local
    if (share !== undefined && leaves !== undefined) {
      const secrets = this.#providers.secrets
      this.#unshare = share(
        partialContent({
          dest: this.dest,
          cid: this.cid,
          header,
          headerBytes,
          part,
          journal,
          leaves,
          ...(secrets.length === 0 ? {} : { secrets }),
        }),
      )
    }
  }

  #ready(): Local {
    if (this.#local === undefined) throw new InternalError('transfer used before it resolved')
    return this.#local
  }

  #report(force: boolean): void {
    this.#progress.report((this.#local ?? this.#present)?.meter ?? this.#checking, force)
  }
}
