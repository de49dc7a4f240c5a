import { asStreamFailure, ChunkVerificationError, type HaulError, NoProviderError } from '../errors.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import { backoffDelay, isTransient, type RetryOptions } from '../transfer/retry.ts'
import { raceAbort } from '../util/abort.ts'
import { type ChunkRequest, ChunkRequests } from './chunk-requests.ts'
import { ChunkWriter } from './chunk-writer.ts'
import type { FetchLocal } from './local-transfer.ts'
import { ensurePages } from './pages.ts'
import type { LinkDeps, PeerLink } from './peer-link.ts'
import type { SwarmScheduler } from './scheduler.ts'
import { haveReadInterval, type SwarmOptions } from './swarm-options.ts'

export interface CoordinatorDeps extends LinkDeps {
  readonly retry: RetryOptions
  readonly swarm: SwarmOptions
  readonly limiter?: RateLimiter
  /**
   * Most bytes one get-chunks request asks for (at least one chunk): the smallest burst of the
   * fetch's rate limits. A request takes its bytes from the limits at once, so larger ones would
   * go at the link's speed before the limit holds them back.
   */
  readonly maxRequestBytes?: number | undefined
}

/**
 * Pulls one content id from its providers, one or many at once. A coordinator
 * loop keeps the leaf pages of the scheduler's window at hand and fills each
 * live provider's pipeline with what the scheduler picks; a task per provider
 * (re)connects it with backoff and re-reads a partial peer's have-bitmap. Every
 * chunk goes the same way: budget lease per request (./chunk-requests.ts),
 * decompress and hash against its proven leaf in the worker pool, only then a
 * positional write, the journal, the meter (./chunk-writer.ts).
 */
export class FetchCoordinator {
  readonly #deps: CoordinatorDeps
  readonly #local: FetchLocal
  readonly #sched: SwarmScheduler
  readonly #links: Map<string, PeerLink>
  readonly #requests: ChunkRequests
  readonly #writer: ChunkWriter
  readonly #tasks = new Set<Promise<void>>()
  #signal: AbortSignal | undefined
  #fatal: unknown
  #wake: (() => void) | undefined
  /** Something happened since the coordinator last looked (a poke nobody was waiting for). */
  #dirty = false

  constructor(
    deps: CoordinatorDeps,
    local: FetchLocal,
    sched: SwarmScheduler,
    links: Map<string, PeerLink>,
    onChunk: (index: number) => void,
  ) {
    this.#deps = deps
    this.#local = local
    this.#sched = sched
    this.#links = links
    this.#writer = new ChunkWriter(deps, local, sched, {
      ban: (link, why) => this.#ban(link, why),
      cancelCopies: (peer, index) => this.#requests.cancelCopies(peer, index),
      written: (index) => {
        onChunk(index)
        // The chunk's bytes left the peer's pipeline: refill it now, not at the next tick.
        this.#poke()
      },
    })
    this.#requests = new ChunkRequests(deps, sched, {
      chunk: (link, index, entry, payload, codec) =>
        this.#writer.write(link, index, entry, payload, codec, this.#signal!),
      failed: (req, err) => this.#requestFailed(req, err),
      fatal: (err) => this.#fail(err),
      ended: () => this.#poke(),
    })
  }

  /** Chunks from providers that failed verification in this run. */
  get corruptChunks(): number {
    return this.#writer.corruptChunks
  }

  /** A provider joined while the transfer runs: start using it. */
  addLink(link: PeerLink): void {
    if (this.#signal !== undefined && !this.#signal.aborted) this.#spawn(this.#linkTask(link))
  }

  async run(signal: AbortSignal): Promise<void> {
    const inner = new AbortController()
    const onAbort = (): void => inner.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    this.#signal = inner.signal
    for (const link of this.#links.values()) if (!link.out) this.#spawn(this.#linkTask(link))
    let stuckSince: number | undefined
    try {
      while (true) {
        if (this.#fatal !== undefined) throw this.#fatal
        // Done once every chunk is verified and its write has landed.
        if (this.#sched.complete && this.#writer.busy === 0) break
        signal.throwIfAborted()
        if (!this.#sched.complete) {
          await ensurePages(this.#sched.window(), [...this.#links.values()], this.#local, this.#deps, {
            signal: inner.signal,
            onError: (link, err) =>
              this.#requestFailed({ link, pending: new Set(), ctrl: new AbortController() }, err),
          })
          this.#pump()
          if (this.#requests.size > 0 || this.#writer.busy > 0) stuckSince = undefined
          else {
            const now = performance.now()
            stuckSince ??= now
            this.#checkStuck(now - stuckSince)
          }
        }
        await this.#changed(250)
      }
    } finally {
      inner.abort()
      this.#requests.abortAll()
      while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks])
      signal.removeEventListener('abort', onAbort)
      this.#signal = undefined
    }
  }

  #spawn(p: Promise<void>): void {
    const t = p.catch((err) => this.#fail(err))
    this.#tasks.add(t)
    void t.finally(() => this.#tasks.delete(t))
  }

  #fail(err: unknown): void {
    if (this.#signal?.aborted) return
    this.#fatal ??= err
    this.#poke()
  }

  #poke(): void {
    this.#dirty = true
    this.#wake?.()
  }

  #changed(ms: number): Promise<void> {
    if (this.#dirty) {
      this.#dirty = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined
        resolve()
      }, ms)
      this.#wake = () => {
        clearTimeout(t)
        this.#wake = undefined
        this.#dirty = false
        resolve()
      }
    })
  }

  /** Nothing in flight and nothing to ask for: wait for providers, then fail with NO_PROVIDER. */
  #checkStuck(waitedMs: number): void {
    const live = [...this.#links.values()].filter((l) => !l.out)
    const missing = this.#sched.unavailable() ?? this.#sched.low
    if (live.length === 0) {
      const links = [...this.#links.values()]
      const gone = links.map((l) => `${l.id.slice(-8)}: ${(l.banned ?? l.gone)?.code}`)
      // Every provider was dropped for corrupt data: that is the failure, not a lack of providers.
      if (links.every((l) => l.banned?.code === 'CHUNK_VERIFICATION_FAILED')) {
        throw new ChunkVerificationError(
          `every provider served chunks that failed verification (${this.#sched.remaining} chunks missing; ${gone.join(', ')})`,
        )
      }
      // Every provider was dropped for the same reason (CONTENT_CHANGED, a protocol violation):
      // that reason is the failure.
      const first = links[0]?.banned
      if (first !== undefined && links.every((l) => l.banned?.code === first.code)) throw first
      throw new NoProviderError(
        `no provider left for chunk ${missing} (${this.#sched.remaining} chunks missing; ${gone.join(', ')})`,
      )
    }
    if (waitedMs >= this.#deps.swarm.waitForChunkMs) {
      const partial = live.filter((l) => l.have !== 'all').length
      const holding = partial === live.length ? `, each holding only part of the content` : ''
      throw new NoProviderError(
        `no live provider holds chunk ${missing} (waited ${Math.round(waitedMs / 1000)} s; ${this.#sched.remaining} chunks missing, ${live.length} live ${live.length === 1 ? 'provider' : 'providers'}${holding}): what was verified is kept; run the same command again with a ticket of a peer that holds the whole content (one that sends it), or once more peers serve it`,
      )
    }
  }

  /** Fills every live peer's pipeline with what the scheduler picks for it. */
  #pump(): void {
    const { limits, budget, swarm } = this.#deps
    const table = this.#local.table
    this.#sched.expectedPeers = [...this.#links.values()].filter((l) => !l.out).length
    const sizeOf = (i: number): number | undefined =>
      table.has(table.pageOf(i)) ? table.get(i)!.length : undefined
    for (const link of this.#links.values()) {
      if (!link.up || this.#sched.isDropped(link.id)) continue
      while (link.requests < swarm.maxRequestsPerPeer) {
        const cap = this.#sched.capacity(link.id)
        if (cap <= 0) break
        const maxBytes = Math.min(cap, Math.floor(budget.limit / 2), this.#deps.maxRequestBytes ?? Infinity)
        const pick = this.#sched.pick(link.id, limits.chunksPerRequest, maxBytes, sizeOf)
        if (pick.indices.length === 0) break
        const entries = new Map(pick.indices.map((i) => [i, table.get(i)!] as const))
        this.#spawn(this.#requests.send(link, pick, entries, this.#signal!))
      }
    }
  }

  #requestFailed(req: ChunkRequest, err: unknown): void {
    if (req.ctrl.signal.aborted) return // cancelled by us: duplicates, a dropped peer, the end
    const link = req.link
    const e = asStreamFailure(err)
    if (e.code === 'TIMEOUT') {
      link.stalls++
      // A stall: this request's chunks and every other one in flight at the peer go to others.
      this.#sched.stalled(link.id, req.pending)
      this.#lose(link, e)
    } else if (e.code === 'CHUNK_UNAVAILABLE') {
      link.kick() // its have-bitmap is stale: read it again
    } else if (isTransient(e) || e.code === 'CONTENT_NOT_FOUND' || e.code === 'ABORTED') {
      this.#lose(link, e)
    } else this.#ban(link, e)
  }

  /** The peer misbehaved: never asked again for this content. */
  #ban(link: PeerLink, why: HaulError): void {
    if (link.banned !== undefined) return
    link.banned = why
    this.#sched.removePeer(link.id)
    this.#requests.abortAt(link)
    link.drop(why)
  }

  /**
   * The connection failed: its chunks go to others, its task reconnects with backoff. When no
   * other provider is up or connecting, the failure is the transfer's: it goes through the
   * transfer's retry rule (backoff, attempts counted against progress, `onRetry`), the same as
   * for a fetch that only ever had one provider.
   */
  #lose(link: PeerLink, why: HaulError): void {
    this.#sched.removePeer(link.id)
    this.#requests.abortAt(link)
    link.drop(why)
    if (!this.#othersLive(link)) this.#fail(why)
  }

  /** Connected providers that hold part of the content (their have-bitmaps are read again). */
  #partialPeers(): number {
    let n = 0
    for (const l of this.#links.values()) if (l.up && l.have !== 'all') n++
    return n
  }

  /** Some provider other than `link` is up or connecting, and not out. */
  #othersLive(link: PeerLink): boolean {
    for (const l of this.#links.values()) if (l !== link && !l.out && (l.up || l.connecting)) return true
    return false
  }

  /** Connects (again) with backoff, and re-reads a partial peer's have-bitmap (haveReadInterval). */
  async #linkTask(link: PeerLink): Promise<void> {
    const signal = this.#signal!
    const { swarm, retry } = this.#deps
    const leafCount = this.#local.header.leafCount
    while (!signal.aborted && !link.out) {
      const connecting = !link.up
      try {
        if (connecting) {
          this.#sched.removePeer(link.id)
          if (link.attempts > 0) await link.sleep(backoffDelay(link.attempts, retry), signal)
          // A connect the resolve step began runs under its signal: the run's end does not wait
          // for it (a peer that never says hello holds it for the whole idle timeout).
          await raceAbort(link.connect(this.#deps, signal), signal)
        }
        // A new peer, or a partial one whose bitmap may have grown.
        if (this.#sched.report(link.id) === undefined || link.have !== 'all') {
          this.#sched.addPeer(link.id, await link.fetchHave(this.#deps.cid, leafCount, signal))
          this.#poke()
        }
      } catch (err) {
        if (signal.aborted) return
        const e = asStreamFailure(err)
        // A connect started under another signal (the transfer's resolve step, since left): again, at once.
        if (e.code === 'ABORTED') continue
        if (!(isTransient(e) || e.code === 'CONTENT_NOT_FOUND')) return this.#ban(link, e)
        this.#sched.removePeer(link.id)
        link.drop(e)
        if (!this.#othersLive(link)) return this.#fail(e)
        if (++link.attempts > swarm.peerRetries) {
          link.gone = e
          this.#poke()
          return
        }
        continue
      }
      await link.sleep(haveReadInterval(swarm, this.#partialPeers()), signal)
    }
  }
}
