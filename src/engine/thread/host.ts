/**
 * `createEngine({ thread: 'worker' })`: the engine runs in a worker thread of its own
 * (./engine-worker.ts) and this object stands for it in the caller's thread, with the Engine's
 * API, through comlink. The caller's event loop then only sees replies and the callbacks it
 * asked for: framing, verification bookkeeping, disk writes and libp2p run elsewhere.
 *
 * What crosses, and how:
 * - Option callbacks (onProgress, onRetry, onFile, …) go as one comlink proxy per call, named,
 *   their arguments with errors encoded (./wire.ts).
 * - An AbortSignal does not clone: the host listens on it and aborts the call's own controller
 *   in the engine thread, so a cancel ends in the same ABORTED error.
 * - Errors are rebuilt in their own classes from their codes (registerErrorHandler).
 * - The API's synchronous reads (stats(), addresses, a transfer's status(), progress(),
 *   swarmStats()) answer from a copy the engine thread keeps current: every STATE_INTERVAL_MS
 *   while something changes, and before every reply, so a settled call's state is its own.
 * - A thread that dies rejects every pending call, and every later one, with InternalError.
 */
import { randomBytes } from 'node:crypto'
import { resolve as resolvePath } from 'node:path'
import { Worker } from 'node:worker_threads'
import { proxy, type Remote, wrap } from 'comlink'
import type { CollectionFetchOptions, CollectionResult } from '../../collection/fetch-collection.ts'
import type { CollectionIndex } from '../../collection/publish-collection.ts'
import { looksLikeCid } from '../../descriptor/cid.ts'
import { AbortedError, type HaulError, InvalidArgumentError } from '../../errors.ts'
import type { ServeEvent, ServeListener } from '../../serve/serve-events.ts'
import { DecodedTickets } from '../../ticket/multi-ticket.ts'
import type { FetchResult } from '../../transfer/transfer-types.ts'
import { threadFile } from '../../util/dist-file.ts'
import { checkArgs, checkProvider, contentIdArg, guardListener, rejecting } from '../api-args.ts'
import type {
  EngineApi,
  FetchOptions,
  Published,
  PublishOptions,
  Seeded,
  SeedOptions,
  TransferHandle,
} from '../api-types.ts'
import { type EngineConfig, type EngineOptions, resolveEngineConfig } from '../config.ts'
import { cidNeedsDht, DECODED_TICKETS } from '../fetch-requests.ts'
import { onlySelf, provideNeedsDht, providersFor } from '../fetches.ts'
import type { EngineStats } from '../stats.ts'
import { nodeEndpoint } from './endpoint.ts'
import { Link } from './link.ts'
import {
  decodeDeep,
  type Emit,
  type Plain,
  registerErrorHandler,
  type ThreadApi,
  type ThreadState,
  type TransferState,
} from './wire.ts'

/** A transfer as last reported: what its handle's synchronous reads return. */
type Mirrored = { -readonly [K in keyof TransferState]: TransferState[K] }

/** The engine thread's state, kept current by its pushes (see the module comment). */
class Mirror {
  stats: EngineStats
  addresses: string[]
  /** Unsettled transfers; a settled one keeps its last state in its handle. */
  readonly transfers = new Map<string, Mirrored>()
  constructor(state: ThreadState) {
    this.stats = state.stats
    this.addresses = state.addresses
  }
  apply(state: ThreadState): void {
    this.stats = state.stats
    this.addresses = state.addresses
    for (const t of state.transfers) {
      const m = this.transfers.get(t.id)
      if (m !== undefined) Object.assign(m, t)
    }
  }
}

/** An option set split for the crossing: plain data, the callbacks' proxy, the signal's hook. */
interface Prepared<T> {
  plain: Plain<T>
  emit: Emit | undefined
  /** Stops listening on the caller's signal. */
  done: () => void
}

let workerOf: (engine: ThreadEngine) => Worker

/** The thread an engine runs in, for tests that end it as a crash would. Not part of the public API. */
export function engineThread(engine: ThreadEngine): Worker {
  return workerOf(engine)
}

export class ThreadEngine implements EngineApi {
  readonly config: EngineConfig
  readonly peerId: string
  readonly metricsAddress: string | undefined
  readonly #link: Link
  readonly #remote: Remote<ThreadApi>
  readonly #mirror: Mirror
  readonly #serveListeners = new Set<ServeListener>()
  #serving = false
  #calls = 0
  #stopping: Promise<void> | undefined
  readonly #tickets = new DecodedTickets(DECODED_TICKETS)
  readonly #idTag = randomBytes(6).toString('hex')
  #fetches = 0

  static {
    workerOf = (engine) => engine.#link.worker
  }

  private constructor(link: Link, remote: Remote<ThreadApi>, mirror: Mirror, started: ThreadStarted) {
    this.#link = link
    this.#remote = remote
    this.#mirror = mirror
    this.config = started.config
    this.peerId = started.peerId
    this.metricsAddress = started.metricsAddress
  }

  /** Starts the thread and its engine; a bad option fails here, before a thread starts. */
  static async create(options: EngineOptions): Promise<ThreadEngine> {
    resolveEngineConfig(options)
    registerErrorHandler()
    const link = new Link(new Worker(new URL(workerFile())))
    const remote = wrap<ThreadApi>(nodeEndpoint(link.worker))
    let mirror: Mirror | undefined
    const sink = proxy((state: ThreadState) => mirror?.apply(state))
    const warn = proxy((w: { name: string; message: string }) => process.emitWarning(w.message, w.name))
    try {
      const started = await link.race(remote.start(options, sink, warn))
      mirror = new Mirror(started.state)
      return new ThreadEngine(link, remote, mirror, started)
    } catch (err) {
      await link.close()
      throw err
    }
  }

  get addresses(): string[] {
    return [...this.#mirror.addresses]
  }

  /** The engine's stats as of its thread's last report (at most STATE_INTERVAL_MS old, current after each reply). */
  stats(): EngineStats {
    return structuredClone(this.#mirror.stats)
  }

  onServe(listener: ServeListener): () => void {
    // Shielded here, in the caller's thread where it runs, as Engine.onServe shields it.
    const guarded = guardListener('onServe', listener)
    this.#serveListeners.add(guarded)
    if (!this.#serving && this.#stopping === undefined) {
      this.#serving = true
      const fanOut = proxy((event: ServeEvent) => {
        const e = decodeDeep(event) as ServeEvent
        for (const l of this.#serveListeners) l(e)
      })
      this.#link.race(this.#remote.listenServe(fanOut)).catch(() => {})
    }
    return () => {
      this.#serveListeners.delete(guarded)
    }
  }

  publish(path: string, opts: PublishOptions = {}): Promise<Published> {
    return rejecting(() => {
      this.#assertRunning()
      const checked = checkArgs.publish(path, opts)
      return this.#run(checked, (call, p) => this.#remote.publish(call, path, p.plain, p.emit)).then((r) =>
        this.#announced(r, r.index.cid),
      )
    })
  }

  /** The thread's reply with its `announced` promise back (see ThreadApi.announced). */
  #announced<T extends { announced?: Promise<boolean> }>(r: T, cid: Uint8Array): T {
    if ((r.announced as unknown) !== true) return r
    const announced = this.#link
      .race(this.#remote.announced(Buffer.from(cid).toString('hex')))
      .catch(() => false)
    return { ...r, announced }
  }

  publishCollection(
    paths: string | readonly string[],
    opts: PublishOptions = {},
  ): Promise<{ ticket: string; index: CollectionIndex }> {
    return rejecting(() => {
      this.#assertRunning()
      const { list, opts: checked } = checkArgs.publishCollection(paths, opts)
      return this.#run(checked, (call, p) => this.#remote.publishCollection(call, list, p.plain, p.emit))
    })
  }

  unpublish(contentId: Uint8Array | string): void {
    const cid = contentIdArg(contentId)
    this.#link.race(this.#remote.unpublish(cid)).catch(() => {})
  }

  fetch(ticketText: string, dest: string, opts: FetchOptions = {}): TransferHandle {
    this.#assertRunning()
    const checked = checkArgs.fetch(ticketText, dest, opts)
    // What needs the DHT is checked here too, with this engine's config, and thrown as there.
    const dht = this.config.dht.enabled
    if (looksLikeCid(ticketText) && !dht) throw cidNeedsDht()
    // Decoded here too, so that a bad ticket throws from fetch() as in the engine's own thread.
    if (!looksLikeCid(ticketText)) {
      const decoded = this.#tickets.decode(ticketText)
      if (decoded.kind === 'collection') {
        throw new InvalidArgumentError(
          'this ticket names a folder (a collection): fetch it with fetchCollection (haul get does)',
        )
      }
      if (checked.provide === true && !dht) throw provideNeedsDht()
      // Checked with the engine's peer id, which this host knows: thrown here, as there.
      if (decoded.providers.length > 0 && providersFor(decoded, this.peerId, checked.providers).length === 0)
        throw onlySelf()
    }
    const id = `${this.#idTag}-${++this.#fetches}`
    const state: Mirrored = { id, status: 'resolving', progress: undefined, swarm: undefined }
    this.#mirror.transfers.set(id, state)
    const p = this.#prepare(id, checked)
    const result = this.#link
      .race(this.#remote.fetch(id, ticketText, resolvePath(dest), p.plain, p.emit) as Promise<FetchResult>)
      .finally(() => {
        p.done()
        this.#mirror.transfers.delete(id)
      })
    // As the engine's own handle: a caller watching the status, not awaiting the result, must
    // not get an unhandled rejection (which ends a Node process) when it fails or is cancelled.
    result.catch(() => {})
    return {
      id,
      result,
      status: () => state.status,
      progress: () => state.progress,
      swarmStats: () => state.swarm,
      cancel: () => {
        this.#link.race(this.#remote.cancel(id)).catch(() => {})
      },
      addProvider: (provider) => {
        // Checked here, where it is called, so that a wrong one throws as in the engine's own thread.
        checkProvider('addProvider: the provider', provider)
        this.#link.race(this.#remote.addProvider(id, provider)).catch(() => {})
      },
    }
  }

  fetchCollection(
    ticketText: string,
    dest: string,
    opts: CollectionFetchOptions = {},
  ): Promise<CollectionResult> {
    return rejecting(() => {
      this.#assertRunning()
      const checked = checkArgs.fetchCollection(ticketText, dest, opts)
      return this.#run(checked, (call, p) =>
        this.#remote.fetchCollection(call, ticketText, resolvePath(dest), p.plain, p.emit),
      )
    })
  }

  seed(dest: string, opts: SeedOptions = {}): Promise<Seeded> {
    return rejecting(() => {
      this.#assertRunning()
      const checked = checkArgs.seed(dest, opts)
      return this.#link
        .race(this.#remote.seed(resolvePath(dest), checked))
        .then((s) => this.#announced(s, s.cid))
    })
  }

  /** Stops the engine as `Engine.stop` does, then ends its thread. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    try {
      await this.#link.race(this.#remote.stop())
    } catch {
      // A thread that died has nothing left to stop.
    } finally {
      await this.#link.close()
    }
  }

  /** One call with an options object: its id, its plain options and callbacks, its signal heard. */
  #run<T, O extends object>(opts: O, go: (call: string, p: Prepared<O>) => Promise<T>): Promise<T> {
    const call = `c${++this.#calls}`
    const p = this.#prepare(call, opts)
    return this.#link.race(go(call, p)).finally(p.done)
  }

  #prepare<O extends object>(call: string, opts: O): Prepared<O> {
    const plain: Record<string, unknown> = {}
    const fns = new Map<string, (...args: unknown[]) => void>()
    let signal: AbortSignal | undefined
    for (const [k, v] of Object.entries(opts)) {
      if (k === 'signal') signal = v as AbortSignal | undefined
      // Shielded already (checkArgs), in the caller's thread, whose process a throw's warning is for.
      else if (typeof v === 'function') fns.set(k, v as (...args: unknown[]) => void)
      else if (v !== undefined) plain[k] = v
    }
    if (fns.size > 0) plain.callbacks = [...fns.keys()]
    if (signal?.aborted === true) plain.aborted = true
    const onAbort = (): void => {
      this.#link.race(this.#remote.abort(call)).catch(() => {})
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    const emit =
      fns.size === 0
        ? undefined
        : proxy((name: string, args: unknown[]) => {
            fns.get(name)?.(...args.map(decodeDeep))
          })
    return {
      plain: plain as Plain<O>,
      emit,
      done: () => signal?.removeEventListener('abort', onAbort),
    }
  }

  #assertRunning(): void {
    const failed: HaulError | undefined = this.#link.failure
    if (failed !== undefined) throw failed
    if (this.#stopping !== undefined) throw new AbortedError('the engine is stopped: create a new one')
  }
}

type ThreadStarted = Awaited<ReturnType<ThreadApi['start']>>

/**
 * The engine thread runs the compiled JavaScript, as the worker pool's threads do (see
 * src/workers/pool.ts): dist/engine/thread/engine-worker.js, whether this runs compiled, bundled
 * or from `src/` (tests, benchmarks).
 */
function workerFile(): string {
  return threadFile('engine/thread/engine-worker.js', import.meta.url, 'engine thread code')
}
