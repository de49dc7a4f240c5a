import type { DescriptorHeader } from '../descriptor/header.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import { type HaulError, InternalError, NoProviderError, StreamClosedError } from '../errors.ts'
import type { AdmissionPlace } from '../resources/admission.ts'
import type { PublishedContent } from '../serve/registry.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import type { JournalOptions } from '../storage/journal-options.ts'
import type { Provider, SwarmTicket } from '../ticket/multi-ticket.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import { isTransient, type RetryInfo, type RetryOptions } from '../transfer/retry.ts'
import type { TransferJob } from '../transfer/transfer-machine.ts'
import type { FetchResult, SwarmStats } from '../transfer/transfer-types.ts'
import { type CoordinatorDeps, FetchCoordinator, type FetchLocal } from './coordinator.ts'
import { type DestinationPolicy, holdsContent, type PresentState, presentState } from './destination.ts'
import {
  assertComplete,
  type LocalTransfer,
  openLocalTransfer,
  ProgressThrottle,
  transferResult,
} from './local-transfer.ts'
import { LeafStore, partialContent } from './partial-seed.ts'
import { PeerLink } from './peer-link.ts'
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

const MAX_PROVIDERS = 64

/** What providers that do not have the content say (or a node without haul): others may. */
const LACKING: ReadonlySet<string> = new Set(['CONTENT_NOT_FOUND', 'NO_PROVIDER', 'UNSUPPORTED_VERSION'])

/**
 * The receiving side of one transfer, from one provider or many, as the steps the transfer
 * machine runs (retries, cancel, finalize). A ticket naming one peer is a fetch with one
 * provider. `resolve` reaches at least one provider and opens `<dest>.part` and its journal
 * (and, when the fetch seeds what it has, the leaf sidecar); `fetchChunks` runs the
 * FetchCoordinator over every provider not dropped; a transfer retry (all providers lost)
 * reconnects to all of them. Local state outlives sessions: after a retry, fetching continues
 * from the journal's chunk set. The job owns its sessions, files and admission place, and
 * releases them in `cleanup` whatever state the machine ended in.
 */
export class FetchJob implements TransferJob {
  readonly cid: Uint8Array
  readonly dest: string
  readonly retry: RetryOptions
  readonly #deps: FetchJobDeps
  readonly #hooks: FetchJobHooks
  readonly #progress: ProgressThrottle
  readonly #links = new Map<string, PeerLink>()
  /**
   * The secrets this fetch presents, one per provider that has one (grows with addProvider). The
   * chunks it shares (partial seeding) go to requests presenting one of them; to anyone when it
   * started with none (public content).
   */
  readonly #secrets: Uint8Array[] = []
  #local: Local | undefined
  /** Set when the destination already held the content: nothing is fetched or written. */
  #present: PresentState | undefined
  #rehash: Rehasher | undefined
  #resume: ResumeInfo | undefined
  #fetcher: FetchCoordinator | undefined
  #sched: SwarmScheduler | undefined
  #unshare: (() => void) | undefined
  /** A provider served this content's header in this job: a later CONTENT_NOT_FOUND is a restart, not a refusal. */
  #contentSeen = false
  /** Verified chunks as last seen, and when that count last grew (or the job began). */
  #chunksSeen = 0
  #lastChunkAt = performance.now()
  /** The part of progressMark() beyond verified chunks; it stops growing once stalled (see there). */
  #soft = 0
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
    if (this.#links.has(p.peerId) || this.#links.size >= MAX_PROVIDERS) return
    const link = new PeerLink({
      peerId: p.peerId,
      addrs: [...p.addrs],
      ...(p.secret === undefined ? {} : { secret: p.secret }),
    })
    this.#links.set(p.peerId, link)
    if (p.secret !== undefined && !this.#secrets.some((s) => Buffer.from(s).equals(p.secret!))) {
      this.#secrets.push(p.secret)
    }
    this.#fetcher?.addLink(link)
  }

  get retries(): number {
    return this.#retries
  }

  progress(): TransferProgress | undefined {
    return (this.#local ?? this.#present)?.meter.snapshot()
  }

  /**
   * Verified chunks, plus signs that the providers are up and serving although this transfer's
   * own chunks did not complete: chunk bytes received (cut before the chunk was whole; repeated
   * chunk frames do not count, see RemoteSession.chunkBytes), and chunks the first provider
   * served to this engine's other transfers. On a busy link cut every second or two, a transfer
   * may lose its connection again and again before one chunk completes, while the peer is fine
   * (seen: 1 MB transfers in a four-process mesh with cuts every 0.5–3 s gave up after ten such
   * attempts as the rest completed). Those signs count only until the transfer has gone
   * `retry.maxStallMs` without a verified chunk of its own; then `retry.maxAttempts` more
   * failures without one end it, so a link that always breaks mid-chunk still fails in bounded time.
   */
  progressMark(): number {
    const chunks = this.#local?.journal.chunks ?? 0
    const now = performance.now()
    if (chunks > this.#chunksSeen) {
      this.#chunksSeen = chunks
      this.#lastChunkAt = now
    }
    if (now - this.#lastChunkAt < this.retry.maxStallMs) {
      let received = 0
      for (const l of this.#links.values()) received += l.chunkBytes
      this.#soft = Math.max(this.#soft, received + (this.#deps.place?.peerVerified() ?? 0))
    }
    return chunks + this.#soft
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
          ...(l.route === undefined ? {} : { route: l.route }),
          ...(out === undefined ? {} : { out }),
        }
      }),
    }
  }

  /**
   * Transient failures; CONTENT_NOT_FOUND once a provider has served this content's header (a
   * restarting sender serves nothing until it has indexed the file again); NO_PROVIDER when
   * a provider was lost to the network (not banned, not merely lacking the chunk): reconnecting
   * to everyone may cure them; and these, or UNSUPPORTED_VERSION (a DHT record naming a node
   * without haul), while a search may still find other providers.
   */
  canRetry(error: HaulError): boolean {
    if (isTransient(error)) return true
    if (this.#contentSeen && error.code === 'CONTENT_NOT_FOUND') return true
    if (LACKING.has(error.code) && this.#deps.stillLooking?.() === true) return true
    return error.code === 'NO_PROVIDER' && [...this.#links.values()].some((l) => l.gone !== undefined)
  }

  /**
   * Until a stream to a provider has opened in this job, a failure that says the providers may
   * not be there (PEER_UNREACHABLE, TIMEOUT) is retried only `retry.maxAttemptsFirstContact`
   * times; then the transfer fails with the error itself, so a wrong address or a sender that is
   * not running is told in about a second. Every other transient failure (a stream cut,
   * TOO_MANY_REQUESTS) came from a peer, and gets `retry.maxAttempts`.
   */
  attemptLimit(error: HaulError): number {
    return this.#unreached(error)
      ? Math.min(this.retry.maxAttemptsFirstContact, this.retry.maxAttempts)
      : this.retry.maxAttempts
  }

  exhausted(last: HaulError, _attempts: number): HaulError | undefined {
    return this.#unreached(last) ? last : undefined
  }

  /**
   * No provider was reached in this job and this failure says so (no dial, no answer). Any other
   * failure came over a connection Noise proved was the peer's.
   */
  #unreached(error: HaulError): boolean {
    const reached = [...this.#links.values()].some((l) => l.reached)
    return !reached && (error.code === 'PEER_UNREACHABLE' || error.code === 'TIMEOUT')
  }

  onRetry(info: RetryInfo): void {
    this.#retries++
    this.#deps.place?.congested()
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
          // A node that does not speak haul never will: it is not asked again in this fetch.
          if (err.code === 'UNSUPPORTED_VERSION') l.banned ??= err
          throw err
        }),
      ),
    ).catch((err: AggregateError) => {
      throw (err.errors[0] as HaulError | undefined) ?? new StreamClosedError('no provider answered')
    })
    this.#contentSeen = true
    this.#deps.accept?.(header)
    if (this.#local === undefined && this.#present === undefined) {
      if (await holdsContent(this.dest, this.cid, header, this.#deps.destination, signal)) {
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
        // Fetches of one content that start together spread out, so they can serve each other.
        tieSeed: (Math.random() * 2 ** 32) >>> 0 || 1,
      })
      for (let i = 0; i < header.leafCount; i++) if (journal.has(i)) sched.markDone(i)
      this.#sched = sched
      this.#fetcher = new FetchCoordinator(deps, local, sched, this.#links, (index) => {
        this.#deps.place?.chunkVerified()
        this.#hooks.onChunk?.(index)
        this.#report(false)
      })
      await this.#fetcher.run(signal)
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
      await part.commit({ sync: this.#deps.scratch !== true })
      this.#committed = true
      // After the rename: a crash in between leaves a journal with no part file, which the next fetch discards.
      await journal.remove()
      await leaves?.close({ remove: true })
    }
    // Idle sessions go to the pool for the next transfer to their peer; the rest are reset (a
    // graceful close waits on every peer, and a stalled one never answers).
    const done = new StreamClosedError('transfer complete')
    for (const l of this.#links.values()) l.release(this.#deps.sessions, done)
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
      for (const l of this.#links.values()) l.drop(new StreamClosedError('the transfer ended'))
      if (this.#committed || this.#local === undefined) return
      await this.#local.journal.close()
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
    const local = await openLocalTransfer(this.dest, this.cid, header, this.#deps)
    const { part, journal, headerBytes, resume } = local
    const share = this.#deps.share
    let leaves: LeafStore | undefined
    if (share !== undefined) {
      try {
        // A fresh or restarted part file has no verified pages worth keeping.
        leaves = await LeafStore.open(this.dest, header, resume.mode === 'fresh' || resume.mode === 'restart')
      } catch (err) {
        await journal.close()
        await part.close()
        throw err
      }
    }
    const pages = Math.ceil(this.#deps.swarm.windowChunks / header.pageSize) + 2
    const table = new VerifiedLeafTable(header, { maxCachedPages: pages })
    this.#local = { ...local, leaves, table }
    this.#resume = resume
    this.#rehash = local.rehasher
    if (share !== undefined && leaves !== undefined) {
      this.#unshare = share(
        partialContent({
          dest: this.dest,
          cid: this.cid,
          header,
          headerBytes,
          part,
          journal,
          leaves,
          ...(this.#secrets.length === 0 ? {} : { secrets: this.#secrets }),
        }),
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
