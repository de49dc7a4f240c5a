import { basename, resolve as resolvePath } from 'node:path'
import { nameProblem } from '../collection/names.ts'
import { type CollectionIndex, indexCollection } from '../collection/publish-collection.ts'
import { refuseOwnPath } from '../collection/walk.ts'
import type { DescriptorHeader } from '../descriptor/header.ts'
import {
  ConfigInvalidError,
  ContentChangedError,
  type HaulError,
  InvalidArgumentError,
  PeerUnreachableError,
} from '../errors.ts'
import { openPartialSeed } from '../fetch/partial-seed.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import type { IndexOptions, IndexResult } from '../serve/indexer.ts'
import { indexForServing } from '../serve/publish.ts'
import { type LastPublished, PublishHistory } from '../serve/publish-history.ts'
import type { ContentRegistry, PublishedContent } from '../serve/registry.ts'
import { SecretStore } from '../serve/secret-store.ts'
import { descriptorFolder } from '../storage/data-folder.ts'
import { DestinationLock } from '../storage/dest-lock.ts'
import type { OpenFiles } from '../storage/open-files.ts'
import { encodeSwarmTicket, type Provider, type SwarmTicket } from '../ticket/multi-ticket.ts'
import { Pending } from '../util/pending.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Published, PublishOptions, Seeded, SeedOptions } from './api-types.ts'
import type { EngineConfig } from './config.ts'

/**
 * How long after an engine with a data folder starts it tells requests for what its earlier runs
 * published CONTENT_PREPARING (asked again) rather than unknown (final): time for the
 * application to publish it again. A minute: publishing a hundred files again takes seconds, a
 * large file's index minutes, which the publish itself tells (#preparing) once it has begun.
 */
export const RESTART_WINDOW_MS = 60_000

/** What publishing needs of the engine. */
export interface PublishingDeps {
  readonly config: EngineConfig
  readonly registry: ContentRegistry
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
  /** Where what is served keeps its open files (`server.maxOpenFiles`). */
  readonly openFiles: OpenFiles
  /** This engine as a ticket names it. */
  readonly self: () => Provider
}

/**
 * The engine's publishing side: files, collections and partial seeds indexed, registered for
 * serving, and their tickets. Calls for one file path, or one collection's paths, run one after
 * the other (#oneAtATime).
 *
 * Each publish is guarded by its content id's secret (src/serve/secret-store.ts), which its
 * ticket carries, unless it is public; a collection's pack by its manifest's secret, so the
 * folder's ticket fetches both and nothing else does. Unpublishing forgets the secret and
 * withdraws what the publish granted; a content id another publish also grants (a folder of one
 * file has that file's content id as its pack) is still served to that one's ticket.
 */
export class Publishing {
  readonly #deps: PublishingDeps
  /** Per file or collection (its resolved paths), the publish in progress: the next one waits for it. */
  readonly #running = new Map<string, Promise<void>>()
  /** A collection's manifest content id (hex) → its pack's content id. */
  readonly #packs = new Map<string, Uint8Array>()
  readonly #secrets: SecretStore
  readonly #history: PublishHistory
  /** Seeds under way (see settled). */
  readonly #seeds = new Pending<Seeded>()

  constructor(deps: PublishingDeps) {
    this.#deps = deps
    this.#secrets = new SecretStore(deps.config.dataDir)
    this.#history = new PublishHistory(deps.config.dataDir)
    if (deps.config.dataDir !== undefined) {
      deps.registry.beginLastRun(RESTART_WINDOW_MS, this.#readLastRun())
    }
  }

  /**
   * Tells the registry what the earlier runs published last, each path's content ids under the
   * secret rule of serving (#askers): read in the background, so createEngine does not wait for
   * up to MAX_KEPT_PUBLISHED records and their secrets.
   */
  async #readLastRun(): Promise<void> {
    await this.#history.everyLast(async (last) => {
      const askers = await this.#askers(last)
      if (askers === undefined) return
      for (const cid of last.cids) this.#deps.registry.lastRun(cid, askers.secrets)
    })
  }

  async publish(path: string, opts: PublishOptions): Promise<Published> {
    const file = resolvePath(path)
    return await this.#oneAtATime(`file\0${file}`, () => this.#publish(file, opts))
  }

  /**
   * Runs `work` once the calls before it for `id` (what is published: a file's path, a
   * collection's paths) have settled. At once, two would index into the same descriptor and
   * record the same publish twice; one after the other, the later one reuses what the first
   * wrote and gets the same ticket.
   */
  async #oneAtATime<T>(id: string, work: () => Promise<T>): Promise<T> {
    const run = (this.#running.get(id) ?? Promise.resolve()).then(work)
    const settled = run.then(
      () => {},
      () => {},
    )
    this.#running.set(id, settled)
    try {
      return await run
    } finally {
      if (this.#running.get(id) === settled) this.#running.delete(id)
    }
  }

  /** Haul's own folders (the data folder, the descriptor folder): nothing in them is ever sent. */
  async #own(): Promise<string[]> {
    const { dataDir } = this.#deps.config
    const store = await descriptorFolder(dataDir)
    return dataDir === undefined ? [store] : [dataDir, store]
  }

  /** How this engine indexes what it serves: its chunking unless given, its workers and budget. */
  #indexing(
    opts: Pick<IndexOptions, 'signal' | 'onProgress'>,
    cut: Pick<IndexOptions, 'chunking' | 'pageSize'> = { chunking: this.#deps.config.chunking },
  ): Omit<IndexOptions, 'descriptorPath'> {
    const { pool, budget } = this.#deps
    return {
      ...cut,
      pool,
      budget,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
    }
  }

  async #publish(file: string, opts: PublishOptions): Promise<Published> {
    const { config, registry, openFiles } = this.#deps
    const key = ['file', file, config.chunking]
    // Before indexing what may be a large file for a ticket that could name no address.
    this.#assertReachable()
    await refuseOwnPath(file, await this.#own())
    const prepared = await this.#preparing(key, file)
    let index: IndexResult
    let ticket: string
    try {
      let content: PublishedContent
      ;({ index, content } = await indexForServing(file, config.dataDir, this.#indexing(opts), openFiles))
      // Now, so its warning comes before the ticket is out where it can.
      const name = ticketName(file, index.cid)
      const secret = await this.#secretFor(index.cid, opts, [content])
      const cid = index.cid
      ticket = await this.#ticket({ cid, name }, secret, [content])
      registry.add(guarded(content, secret))
      await this.#replacing(key, [index.cid], secret, file)
    } finally {
      prepared()
    }
    return { ticket, index }
  }

  /**
   * Serves a file this engine fetched, publicly, as the content id it was fetched as: indexed
   * (read once more) the way its header says it was cut, so it has the same content id.
   * CONTENT_CHANGED when the file no longer holds that content.
   */
  async provide(
    file: string,
    cid: Uint8Array,
    header: DescriptorHeader,
    signal?: AbortSignal,
  ): Promise<void> {
    const { config, registry, openFiles } = this.#deps
    const { index, content } = await indexForServing(
      file,
      config.dataDir,
      this.#indexing(signal === undefined ? {} : { signal }, {
        chunking: header.chunking,
        pageSize: header.pageSize,
      }),
      openFiles,
    )
    if (!Buffer.from(index.cid).equals(cid)) {
      await Promise.allSettled([content.reader.close(), content.source.close()])
      throw new ContentChangedError(`${file} changed after it was fetched: it is not provided`)
    }
    registry.add(content)
  }

  async publishCollection(
    paths: readonly string[],
    opts: PublishOptions,
  ): Promise<{ ticket: string; index: CollectionIndex }> {
    const resolved = paths.map((p) => resolvePath(p))
    return await this.#oneAtATime(`collection\0${resolved.join('\0')}`, () =>
      this.#publishCollection(paths, resolved, opts),
    )
  }

  async #publishCollection(
    paths: readonly string[],
    resolved: readonly string[],
    opts: PublishOptions,
  ): Promise<{ ticket: string; index: CollectionIndex }> {
    const { config, registry, openFiles } = this.#deps
    const key = ['collection', ...resolved, config.chunking]
    this.#assertReachable()
    const prepared = await this.#preparing(key, paths.join(', '))
    let index: CollectionIndex
    let ticket: string
    try {
      let contents: PublishedContent[]
      const store = await descriptorFolder(config.dataDir)
      ;({ index, contents } = await indexCollection(
        paths,
        store,
        this.#indexing(opts),
        openFiles,
        await this.#own(),
      ))
      const secret = await this.#secretFor(index.cid, opts, contents)
      const { cid, name } = index
      ticket = await this.#ticket({ cid, name, kind: 'collection' }, secret, contents)
      for (const c of contents) registry.add(guarded(c, secret), index.cid)
      this.#packs.set(hex(index.cid), index.packCid)
      await this.#replacing(key, [index.cid, index.packCid], secret, paths.join(', '))
    } finally {
      prepared()
    }
    return { ticket, index }
  }

  async seed(dest: string, opts: SeedOptions): Promise<Seeded> {
    return await this.#seeds.add(this.#seed(dest, opts))
  }

  /**
   * Waits for the seeds under way: each has either given its destination's lock back or put its
   * content in the registry, whose closing gives the lock back. The engine's stop waits for this
   * before closing the registry, so no seed's lock outlives it.
   */
  async settled(): Promise<void> {
    await this.#seeds.settled()
  }

  async #seed(dest: string, opts: SeedOptions): Promise<Seeded> {
    this.#assertReachable()
    const path = resolvePath(dest)
    // One owner per destination: a fetch would rename this part file away, or resume into it, under
    // the seed. Given back when the content is closed (unpublish, stop), and here on every failure
    // before it is opened; after, every failure path closes the content.
    const lock = await DestinationLock.acquire(path, { role: 'seed' })
    let opened: Awaited<ReturnType<typeof openPartialSeed>>
    try {
      opened = await openPartialSeed(path, this.#deps.config.journal, () => lock.release())
    } catch (err) {
      await lock.release()
      throw err
    }
    const { content, chunks, leafCount } = opened
    const secret = await this.#secretFor(content.cid, opts, [content])
    const { cid } = content
    const name = ticketName(dest, cid)
    const ticket = await this.#ticket({ cid, name }, secret, [content])
    if (!this.#deps.registry.addIfAbsent(guarded(content, secret))) {
      await content.reader.close()
      throw new InvalidArgumentError('this engine already serves that content id')
    }
    return { ticket, cid: content.cid, chunks, leafCount }
  }

  unpublish(cid: Uint8Array): void {
    this.#deps.registry.unpublish(cid)
    void this.#secrets.forget(cid)
    const pack = this.#packs.get(hex(cid))
    if (pack === undefined) return
    this.#packs.delete(hex(cid))
    this.#deps.registry.unpublish(pack, cid)
  }

  /**
   * The secret guarding `cid`'s publish; undefined for a public one. When it cannot be had (the
   * data folder refuses it), the `opened` contents are closed: they will not be served.
   */
  async #secretFor(
    cid: Uint8Array,
    opts: SeedOptions,
    opened: readonly PublishedContent[],
  ): Promise<Uint8Array | undefined> {
    if (opts.public === true) return undefined
    try {
      return await this.#secrets.secretOf(cid)
    } catch (err) {
      await Promise.allSettled(opened.flatMap((c) => [c.reader.close(), c.source.close()]))
      throw err
    }
  }

  /**
   * While `key` (a path and chunking) is indexed, what it published last (in an earlier run: a
   * sender restarted on it) is answered CONTENT_PREPARING rather than unknown, which a new fetch
   * takes as final; under the same secret rule as serving. Returns what ends that.
   */
  async #preparing(key: readonly unknown[], what: string): Promise<() => void> {
    const last = await this.#history.last(key)
    const askers = last === undefined ? undefined : await this.#askers(last)
    if (last === undefined || askers === undefined) return () => {}
    const ends = last.cids.map((cid) => this.#deps.registry.preparing(cid, askers.secrets, what))
    return () => {
      for (const end of ends) end()
    }
  }

  /**
   * Records that `key` (a path and chunking) now publishes `cids` guarded by `secret`; what it
   * published before (its last MAX_EARLIER_PUBLISHES publishes, src/serve/publish-history.ts),
   * in a run of this engine or an earlier one,
   * is remembered as withdrawn for a change, so its tickets are told CONTENT_CHANGED. Only a
   * request that could have had it is told (the same secret rule as serving): an old publish
   * whose secret is gone (unpublished, or pruned) is not remembered.
   */
  async #replacing(
    key: readonly unknown[],
    cids: readonly Uint8Array[],
    secret: Uint8Array | undefined,
    what: string,
  ): Promise<void> {
    const earlier = await this.#history.replace(key, { cids, public: secret === undefined })
    const why = `${what} changed since it was published: publish it again to get a new ticket`
    for (const before of earlier) {
      const askers = await this.#askers(before)
      if (askers === undefined) continue
      for (const cid of before.cids) this.#deps.registry.rememberChanged(cid, askers.secrets, why)
    }
  }

  /**
   * Who could have had what `p` published: anyone (`secrets` undefined) when it was public, else
   * requests presenting its secret; undefined when that secret is gone (unpublished, or pruned),
   * so no one is told anything of it.
   */
  async #askers(p: LastPublished): Promise<{ secrets: Uint8Array[] | undefined } | undefined> {
    if (p.public) return { secrets: undefined }
    const secret = await this.#secrets.kept(p.cids[0]!)
    return secret === undefined ? undefined : { secrets: [secret] }
  }

  /**
   * This engine as its ticket names it, with the secret requests to it present. Without an
   * address a receiver could dial no ticket can be written: that is said as what it is (an
   * engine created with `listen: []` only fetches), not as a ticket that cannot be encoded.
   */
  #self(secret: Uint8Array | undefined): Provider {
    const self = this.#assertReachable()
    return secret === undefined ? self : { ...self, secret }
  }

  /** This engine as a ticket names it, or the error of an engine no ticket could name (`#self`). */
  #assertReachable(): Provider {
    const self = this.#deps.self()
    if (self.addrs.length === 0) throw unreachable(this.#deps.config)
    return self
  }

  /**
   * `t`'s ticket, written before its contents are served: when it cannot be (the engine lost its
   * addresses meanwhile), the `opened` contents are closed and nothing is left served.
   */
  async #ticket(
    t: Omit<SwarmTicket, 'providers'>,
    secret: Uint8Array | undefined,
    opened: readonly PublishedContent[],
  ): Promise<string> {
    try {
      return encodeSwarmTicket({ ...t, providers: [this.#self(secret)] })
    } catch (err) {
      await Promise.allSettled(opened.flatMap((c) => [c.reader.close(), c.source.close()]))
      throw err
    }
  }
}

/**
 * Why an engine has no address a ticket could name: created to listen nowhere (it fetches, and
 * publishes nothing), or, with a listen address or a relay, none usable now (every interface
 * link-local, the relay's slot lost).
 */
function unreachable(config: EngineConfig): HaulError {
  if (config.listen.length === 0 && config.relays.length === 0) {
    return new ConfigInvalidError(
      "listen: this engine listens on no address (listen: []) and has no relay, so a ticket could name no way to reach it: it fetches, but cannot publish or seed; create the engine with a listen address (e.g. listen: ['/ip4/0.0.0.0/tcp/0']) or relays",
    )
  }
  return new PeerUnreachableError(
    'this engine has no address a receiver could dial now (none of its listen addresses is usable, and it holds no relay slot): no ticket can name it; try again once it has one (engine.addresses)',
  )
}

/** `content` served only to requests presenting `secret` (undefined: to anyone). */
function guarded(content: PublishedContent, secret: Uint8Array | undefined): PublishedContent {
  return secret === undefined ? content : { ...content, secrets: [secret] }
}

function hex(cid: Uint8Array): string {
  return Buffer.from(cid).toString('hex')
}

/**
 * The name a ticket carries for the file at `path`: its own, or none when a receiver would not
 * write a file under it (src/collection/names.ts). Then receivers save it as `haul-<first 16 hex
 * digits of the content id>`, and a HaulWarning says so while the sender can still rename it.
 */
function ticketName(path: string, cid: Uint8Array): string {
  const name = basename(path)
  const problem = nameProblem(name)
  if (problem === undefined) return name
  process.emitWarning(
    `${path}: receivers cannot take its name (${problem}), so the ticket leaves it out and they save it as haul-${hex(cid).slice(0, 16)}: rename it and send it again to keep its name`,
    'HaulWarning',
  )
  return ''
}
