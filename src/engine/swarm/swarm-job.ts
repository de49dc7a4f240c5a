import type { DescriptorHeader } from '../../descriptor/header.ts'
import { VerifiedLeafTable } from '../../descriptor/verified.ts'
import { type HaulError, InternalError, NoProviderError, StreamClosedError } from '../../errors.ts'
import type { DirectWriteSlots } from '../../storage/direct-writes.ts'
import type { JournalOptions } from '../../storage/journal-options.ts'
import { type DestinationPolicy, holdsContent, type PresentState, presentState } from '../destination.ts'
import {
  assertComplete,
  type LocalTransfer,
  openLocalTransfer,
  ProgressThrottle,
  transferResult,
} from '../local-transfer.ts'
import type { TransferProgress } from '../progress.ts'
import type { PublishedContent } from '../registry.ts'
import type { Rehasher } from '../rehash.ts'
import type { ResumeInfo } from '../resume.ts'
import { isTransient, type RetryInfo, type RetryOptions } from '../retry.ts'
import type { FetchResult } from '../transfer.ts'
import type { TransferJob } from '../transfer-machine.ts'
import { type SwarmDeps, SwarmFetcher, type SwarmLocal } from './multi-fetcher.ts'
import { LeafStore, partialContent } from './partial.ts'
import { PeerLink } from './peer-link.ts'
import { SwarmScheduler } from './scheduler.ts'
import type { Provider, SwarmTicket } from './ticket.ts'

export interface SwarmJobDeps extends Omit<SwarmDeps, 'cid'> {
  readonly journal: JournalOptions
  /** Staging memory for O_DIRECT chunk writes (undefined: buffered writes). */
  readonly directWrites?: DirectWriteSlots | undefined
  /** Serves `content` (partial seeding) until the returned function is called. */
  readonly share?: (content: PublishedContent) => () => void
  /** What to do with a file already at the destination. */
  readonly destination: DestinationPolicy
}

export interface SwarmJobHooks {
  onProgress?: (p: TransferProgress) => void
  onRetry?: (info: RetryInfo) => void
}

/** What a multi-peer fetch did, per peer and in total. */
export interface SwarmStats {
  /** Chunk bytes that arrived after another peer's copy was verified (endgame duplicates). */
  readonly duplicateBytes: number
  /** Chunks that failed verification (never written). */
  readonly corruptChunks: number
  readonly peers: ReadonlyArray<{
    readonly peerId: string
    readonly verifiedBytes: number
    readonly failures: number
    readonly stalls: number
    /** Why the peer is out of this transfer, if it is: its error code. */
    readonly out?: string
  }>
}

/** What the single-peer path keeps, plus the leaf sidecar and the verified-leaf table. */
type Local = LocalTransfer & SwarmLocal

const MAX_PROVIDERS = 64

/**
 * The receiving side of one multi-peer transfer, as steps of the transfer
 * machine (the same machine as a single-peer fetch: retries, cancel, finalize).
 * `resolve` reaches at least one provider and opens `<dest>.part`, its journal
 * and its leaf sidecar; `fetchChunks` runs the SwarmFetcher over every provider
 * not dropped; a transfer retry (all providers lost) reconnects to all of them.
 */
export class SwarmJob implements TransferJob {
  readonly cid: Uint8Array
  readonly dest: string
  readonly retry: RetryOptions
  readonly #deps: SwarmJobDeps
  readonly #hooks: SwarmJobHooks
  readonly #progress: ProgressThrottle
  readonly #links = new Map<string, PeerLink>()
  #local: Local | undefined
  /** Set when the destination already held the content: nothing is fetched or written. */
  #present: PresentState | undefined
  #rehash: Rehasher | undefined
  #resume: ResumeInfo | undefined
  #fetcher: SwarmFetcher | undefined
  #sched: SwarmScheduler | undefined
  #unshare: (() => void) | undefined
  #retries = 0
  #duplicateBytes = 0
  #corrupt = 0
  #committed = false
  /** The step the machine runs or last ran, settled either way (see cleanup). */
  #running: Promise<void> | undefined
  #cleanup: Promise<void> | undefined

  constructor(deps: SwarmJobDeps, ticket: SwarmTicket, dest: string, hooks: SwarmJobHooks = {}) {
    this.#deps = deps
    this.cid = ticket.cid
    this.dest = dest
    this.retry = deps.retry
    this.#hooks = hooks
    this.#progress = new ProgressThrottle(hooks.onProgress)
    for (const p of ticket.providers) this.addProvider(p)
  }

  /** Adds a provider; a running transfer starts using it at once. */
  addProvider(p: Provider): void {
    if (this.#links.has(p.peerId) || this.#links.size >= MAX_PROVIDERS) return
    const link = new PeerLink({ peerId: p.peerId, addrs: [...p.addrs] })
    this.#links.set(p.peerId, link)
    this.#fetcher?.addLink(link)
  }

  get retries(): number {
    return this.#retries
  }

  progress(): TransferProgress | undefined {
    return (this.#local ?? this.#present)?.meter.snapshot()
  }

  progressMark(): number {
    return this.#local?.journal.chunks ?? 0
  }

  stats(): SwarmStats {
    const sched = this.#sched
    return {
      duplicateBytes: this.#duplicateBytes + (sched?.duplicateBytes ?? 0),
      corruptChunks: this.#corrupt + (this.#fetcher?.corruptChunks ?? 0),
      peers: [...this.#links.values()].map((l) => {
        const out = (l.banned ?? l.gone)?.code
        return {
          peerId: l.id,
          verifiedBytes: l.verifiedBytes,
          failures: l.failures,
          stalls: l.stalls,
          ...(out === undefined ? {} : { out }),
        }
      }),
    }
  }

  /**
   * Transient failures, and NO_PROVIDER when a provider was lost to the network (not banned, not
   * merely lacking the chunk): reconnecting to everyone may cure them.
   */
  canRetry(error: HaulError): boolean {
    if (isTransient(error)) return true
    return error.code === 'NO_PROVIDER' && [...this.#links.values()].some((l) => l.gone !== undefined)
  }

  onRetry(info: RetryInfo): void {
    this.#retries++
    for (const l of this.#links.values()) {
      l.gone = undefined
      l.attempts = 0
      l.drop(info.error)
    }
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
    const candidates = [...this.#links.values()].filter((l) => l.banned === undefined)
    if (candidates.length === 0) throw new NoProviderError('every provider was dropped for misbehaving')
    // The first provider to answer is enough to start; the others keep connecting in the background.
    const header = await Promise.any(
      candidates.map((l) =>
        l.connect(deps, signal).catch((err: HaulError) => {
          l.drop(err)
          throw err
        }),
      ),
    ).catch((err: AggregateError) => {
      throw (err.errors[0] as HaulError | undefined) ?? new StreamClosedError('no provider answered')
    })
    if (this.#local === undefined && this.#present === undefined) {
      if (await holdsContent(this.dest, this.cid, header, this.#deps.destination, signal)) {
        this.#present = presentState(header)
        this.#resume = this.#present.resume
      } else await this.#openLocal(header)
    }
    this.#report(true)
  }

  async #fetchChunks(signal: AbortSignal): Promise<void> {
    if (this.#present !== undefined) return
    const local = this.#ready()
    const { header, journal } = local
    const deps = { ...this.#deps, cid: this.cid }
    if (this.#rehash !== undefined) {
      const link = [...this.#links.values()].find((l) => l.up)
      if (link === undefined) throw new StreamClosedError('no provider connected')
      await this.#rehash.run(link.context(deps), signal)
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
    })
    for (let i = 0; i < header.leafCount; i++) if (journal.has(i)) sched.markDone(i)
    this.#sched = sched
    this.#fetcher = new SwarmFetcher(deps, local, sched, this.#links, () => this.#report(false))
    let failed = true
    try {
      await this.#fetcher.run(signal)
      failed = false
    } finally {
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
      await part.commit()
      this.#committed = true
      await journal.remove()
      await leaves.close({ remove: true })
    }
    // Reset, not close: a graceful close waits on every peer, and a stalled one never answers.
    for (const l of this.#links.values()) l.drop(new StreamClosedError('transfer complete'))
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
   * Stops sharing, resets every provider's stream and closes the files (kept unless the transfer
   * completed), once the step the machine left has ended: a cancel leaves it running with its
   * signal aborted, and it ends without waiting on any peer. The second call (the transfer's end
   * and `engine.stop()` both call it) shares the first.
   */
  cleanup(): Promise<void> {
    this.#cleanup ??= this.#release()
    return this.#cleanup
  }

  async #release(): Promise<void> {
    await this.#running
    this.#unshare?.()
    this.#unshare = undefined
    for (const l of this.#links.values()) l.drop(new StreamClosedError('transfer ended'))
    if (this.#committed || this.#local === undefined) return
    await this.#local.journal.close()
    await this.#local.part.close()
    await this.#local.leaves.close()
  }

  /** Carries one run's counters into the totals before a new scheduler replaces it. */
  #absorb(): void {
    this.#duplicateBytes += this.#sched?.duplicateBytes ?? 0
    this.#corrupt += this.#fetcher?.corruptChunks ?? 0
  }

  async #openLocal(header: DescriptorHeader): Promise<void> {
    const local = await openLocalTransfer(this.dest, this.cid, header, this.#deps)
    const { part, journal, headerBytes, resume } = local
    let leaves: LeafStore
    try {
      // A fresh or restarted part file has no verified pages worth keeping.
      leaves = await LeafStore.open(this.dest, header, resume.mode === 'fresh' || resume.mode === 'restart')
    } catch (err) {
      await journal.close()
      await part.close()
      throw err
    }
    const pages = Math.ceil(this.#deps.swarm.windowChunks / header.pageSize) + 2
    const table = new VerifiedLeafTable(header, { maxCachedPages: pages })
    this.#local = { ...local, leaves, table }
    this.#resume = resume
    this.#rehash = local.rehasher
    if (this.#deps.swarm.serve && this.#deps.share !== undefined) {
      this.#unshare = this.#deps.share(
        partialContent({ dest: this.dest, cid: this.cid, header, headerBytes, part, journal, leaves }),
      )
    }
  }

  #ready(): Local {
    if (this.#local === undefined) throw new InternalError('transfer used before it resolved')
    return this.#local
  }

  #report(force: boolean): void {
    this.#progress.report((this.#local ?? this.#present)?.meter, force)
  }
}
