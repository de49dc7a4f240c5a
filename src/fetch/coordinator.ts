import type { DescriptorHeader } from '../descriptor/header.ts'
import type { VerifiedLeafTable } from '../descriptor/verified.ts'
import {
  asStreamFailure,
  ChunkVerificationError,
  DecompressionError,
  type HaulError,
  NoProviderError,
  ProtocolViolationError,
  StreamClosedError,
} from '../errors.ts'
import { retireBuffer } from '../resources/buffer-recycler.ts'
import type { Lease } from '../resources/memory-budget.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import type { Journal } from '../storage/journal.ts'
import type { PartFile } from '../storage/part-file.ts'
import type { ProgressMeter } from '../transfer/progress.ts'
import { backoffDelay, isTransient, type RetryOptions } from '../transfer/retry.ts'
import type { Codec, LeafEntry } from '../types.ts'
import { movable, toRanges } from './fetch-context.ts'
import { ensurePages } from './pages.ts'
import type { LeafStore } from './partial-seed.ts'
import type { LinkDeps, PeerLink } from './peer-link.ts'
import type { ChunkPick, SwarmScheduler } from './scheduler.ts'
import { haveReadInterval, type SwarmOptions } from './swarm-options.ts'

export interface CoordinatorDeps extends LinkDeps {
  readonly retry: RetryOptions
  readonly swarm: SwarmOptions
  readonly limiter?: RateLimiter
}

export interface FetchLocal {
  readonly header: DescriptorHeader
  readonly part: PartFile
  readonly journal: Journal
  readonly meter: ProgressMeter
  /** The leaf sidecar, kept for partial seeding; undefined when this fetch does not seed. */
  readonly leaves: LeafStore | undefined
  readonly table: VerifiedLeafTable
}

interface Request {
  readonly link: PeerLink
  readonly pending: Set<number>
  readonly ctrl: AbortController
}

/**
 * Pulls one content id from its providers, one or many at once. A coordinator
 * loop keeps the leaf pages of the scheduler's window at hand and fills each
 * live provider's pipeline with what the scheduler picks; a task per provider
 * (re)connects it with backoff and re-reads a partial peer's have-bitmap. Every
 * chunk goes the same way: budget lease per request, decompress and hash
 * against its proven leaf in the worker pool, only then a positional write,
 * the journal, the meter.
 */
export class FetchCoordinator {
  readonly #deps: CoordinatorDeps
  readonly #local: FetchLocal
  readonly #sched: SwarmScheduler
  readonly #links: Map<string, PeerLink>
  readonly #onChunk: (index: number) => void
  readonly #requests = new Set<Request>()
  readonly #tasks = new Set<Promise<void>>()
  #signal: AbortSignal | undefined
  #fatal: unknown
  #wake: (() => void) | undefined
  /** Something happened since the coordinator last looked (a poke nobody was waiting for). */
  #dirty = false
  #verifying = 0
  corruptChunks = 0

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
    this.#onChunk = onChunk
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
        if (this.#sched.complete && this.#verifying === 0) break
        signal.throwIfAborted()
        if (!this.#sched.complete) {
          await ensurePages(this.#sched.window(), [...this.#links.values()], this.#local, this.#deps, {
            signal: inner.signal,
            onError: (link, err) =>
              this.#requestFailed({ link, pending: new Set(), ctrl: new AbortController() }, err),
          })
          this.#pump()
          if (this.#requests.size > 0 || this.#verifying > 0) stuckSince = undefined
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
      for (const r of this.#requests) r.ctrl.abort()
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
      throw new NoProviderError(
        `no live provider holds chunk ${missing} (waited ${Math.round(waitedMs)} ms; ${this.#sched.remaining} chunks missing, ${live.length} providers left)`,
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
        const maxBytes = Math.min(cap, Math.floor(budget.limit / 2))
        const pick = this.#sched.pick(link.id, limits.chunksPerRequest, maxBytes, sizeOf)
        if (pick.indices.length === 0) break
        const entries = new Map(pick.indices.map((i) => [i, table.get(i)!] as const))
        this.#spawn(this.#request(link, pick, entries))
      }
    }
  }

  async #request(link: PeerLink, pick: ChunkPick, entries: Map<number, LeafEntry>): Promise<void> {
    const signal = this.#signal!
    const session = link.session
    const req: Request = { link, pending: new Set(pick.indices), ctrl: new AbortController() }
    const onAbort = (): void => req.ctrl.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    this.#requests.add(req)
    link.requests++
    const seen = new Set<number>()
    const work: Promise<void>[] = []
    let lease: Lease | undefined
    try {
      if (session === undefined) throw new StreamClosedError('the peer went away')
      await this.#deps.limiter?.take(pick.bytes, { signal: req.ctrl.signal })
      lease = await this.#deps.budget.acquire(pick.bytes, { signal: req.ctrl.signal })
      this.#sched.sent(link.id, performance.now())
      await session.request(
        (requestId) => ({
          type: 'get-chunks',
          requestId,
          cid: this.#deps.cid,
          ranges: toRanges(pick.indices),
          secret: link.provider.secret,
        }),
        (msg) => {
          if (msg.type === 'end') return 'done'
          if (msg.type !== 'chunk')
            throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-chunks`)
          const entry = entries.get(msg.index)
          if (entry === undefined || seen.has(msg.index)) {
            throw new ProtocolViolationError(`the peer sent chunk ${msg.index}, which was not asked for`)
          }
          seen.add(msg.index)
          if (msg.rawLength !== entry.length) {
            throw new ProtocolViolationError(
              `chunk ${msg.index} claims ${msg.rawLength} bytes, its leaf ${entry.length}`,
            )
          }
          req.pending.delete(msg.index)
          // Already verified from another peer (endgame): counted as duplicate bytes and dropped.
          if (!this.#sched.arrived(link.id, msg.index, msg.payload.length, performance.now())) return 'more'
          const w = this.#verifyAndWrite(link, msg.index, entry, movable(msg.payload), msg.codec)
          w.catch(() => {})
          work.push(w)
          return 'more'
        },
        { signal: req.ctrl.signal },
      )
      if (req.pending.size > 0) {
        throw new ProtocolViolationError(`the peer ended the request without ${req.pending.size} chunks`)
      }
    } catch (err) {
      // The chunks that arrived whole before the failure are verified and kept first: the failure
      // may end the transfer's attempt (a single provider), which would cancel their work.
      await Promise.allSettled(work)
      this.#requestFailed(req, err)
    } finally {
      signal.removeEventListener('abort', onAbort)
      this.#sched.released(link.id, req.pending)
      this.#requests.delete(req)
      link.requests--
      for (const r of await Promise.allSettled(work)) if (r.status === 'rejected') this.#fail(r.reason)
      lease?.release()
      this.#poke()
    }
  }

  #requestFailed(req: Request, err: unknown): void {
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

  async #verifyAndWrite(
    link: PeerLink,
    index: number,
    entry: LeafEntry,
    payload: Uint8Array,
    codec: Codec,
  ): Promise<void> {
    const { pool } = this.#deps
    const { part, journal, meter } = this.#local
    this.#verifying++
    try {
      let plain: Uint8Array
      try {
        const buffers = this.#deps.buffers
        const into = codec === 'none' ? undefined : buffers?.take(entry.length)
        plain = await pool.decodeVerify(payload, codec, entry.length, entry.hash, {
          signal: this.#signal!,
          ...(into === undefined ? {} : { into }),
          onSpare: this.#retire,
        })
      } catch (err) {
        if (!(err instanceof ChunkVerificationError || err instanceof DecompressionError)) throw err
        this.corruptChunks++
        link.failures++
        if (this.#sched.corrupt(link.id, index)) {
          this.#ban(
            link,
            new ChunkVerificationError(
              `${this.#deps.swarm.maxPeerFailures} chunks from this peer failed verification`,
            ),
          )
        }
        return
      }
      if (this.#sched.isDone(index)) {
        this.#sched.arrived(link.id, index, entry.length, performance.now())
        this.#retire(plain)
        return
      }
      // Marked done before the write, so a second copy verifying meanwhile is not written twice.
      for (const other of this.#sched.verified(link.id, index)) this.#cancelCopies(other, index)
      await part.write(entry.offset, plain)
      // On disk now: the memory can carry the next chunk.
      this.#retire(plain)
      await journal.record(index, entry.length)
      link.attempts = 0
      link.verifiedBytes += entry.length
      meter.add(entry.length)
      this.#onChunk(index)
      // The chunk's bytes left the peer's pipeline: refill it now, not at the next tick.
      this.#poke()
    } finally {
      this.#verifying--
    }
  }

  /**
   * Ends a chunk buffer this fetch owns whole (a payload, or what the pool decoded: a payload,
   * a recycled buffer, or a new one) once nothing reads it: reused, or freed now. Bound once,
   * so handing it to the pool for every chunk allocates nothing.
   */
  readonly #retire = (buf: Uint8Array): void => retireBuffer(this.#deps.buffers, buf)

  /** `peer` no longer needs chunk `index`; a request left with nothing pending is cancelled. */
  #cancelCopies(peer: string, index: number): void {
    for (const r of this.#requests) {
      if (r.link.id !== peer || !r.pending.delete(index)) continue
      if (r.pending.size === 0) r.ctrl.abort()
    }
  }

  /** The peer misbehaved: never asked again for this content. */
  #ban(link: PeerLink, why: HaulError): void {
    if (link.banned !== undefined) return
    link.banned = why
    this.#sched.removePeer(link.id)
    for (const r of this.#requests) if (r.link === link) r.ctrl.abort()
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
    for (const r of this.#requests) if (r.link === link) r.ctrl.abort()
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
          await link.connect(this.#deps, signal)
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
