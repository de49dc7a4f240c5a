import { basename, resolve as resolvePath } from 'node:path'
import { safeName } from '../collection/names.ts'
import { type CollectionIndex, indexCollection } from '../collection/publish-collection.ts'
import { InvalidArgumentError } from '../errors.ts'
import { openPartialSeed } from '../fetch/partial-seed.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { indexForServing } from '../serve/publish.ts'
import type { ContentRegistry } from '../serve/registry.ts'
import { descriptorFolder } from '../storage/data-folder.ts'
import { encodeSwarmTicket, type Provider } from '../ticket/multi-ticket.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Published, PublishOptions, Seeded } from './api-types.ts'
import type { EngineConfig } from './config.ts'

/** What publishing needs of the engine. */
export interface PublishingDeps {
  readonly config: EngineConfig
  readonly registry: ContentRegistry
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
  /** This engine as a ticket names it. */
  readonly self: () => Provider
}

/**
 * The engine's publishing side: files, collections and partial seeds indexed, registered for
 * serving, and their tickets. Calls for one file path run one after the other (at once they
 * would write the same descriptor file); a collection's unpublish stops its pack too.
 */
export class Publishing {
  readonly #deps: PublishingDeps
  /** Per resolved path, the publish in progress: the next one for that path waits for it. */
  readonly #running = new Map<string, Promise<void>>()
  /** A collection's manifest content id (hex) → its pack's content id. */
  readonly #packs = new Map<string, Uint8Array>()

  constructor(deps: PublishingDeps) {
    this.#deps = deps
  }

  async publish(path: string, opts: PublishOptions): Promise<Published> {
    const file = resolvePath(path)
    const run = (this.#running.get(file) ?? Promise.resolve()).then(() => this.#publish(file, opts))
    const settled = run.then(
      () => {},
      () => {},
    )
    this.#running.set(file, settled)
    try {
      return await run
    } finally {
      if (this.#running.get(file) === settled) this.#running.delete(file)
    }
  }

  async #publish(file: string, opts: PublishOptions): Promise<Published> {
    const { config, registry, pool, budget } = this.#deps
    const { index, content } = await indexForServing(file, config.dataDir, {
      chunking: config.chunking,
      pool,
      budget,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
    })
    registry.add(content)
    const ticket = encodeSwarmTicket({
      cid: index.cid,
      providers: [this.#deps.self()],
      name: safeName(basename(file)) ?? '',
    })
    return { ticket, index }
  }

  async publishCollection(
    paths: readonly string[],
    opts: PublishOptions,
  ): Promise<{ ticket: string; index: CollectionIndex }> {
    const { config, registry, pool, budget } = this.#deps
    const { index, contents } = await indexCollection(paths, await descriptorFolder(config.dataDir), {
      chunking: config.chunking,
      pool,
      budget,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
    })
    for (const c of contents) registry.add(c)
    this.#packs.set(hex(index.cid), index.packCid)
    const ticket = encodeSwarmTicket({
      cid: index.cid,
      providers: [this.#deps.self()],
      name: index.name,
      kind: 'collection',
    })
    return { ticket, index }
  }

  async seed(dest: string): Promise<Seeded> {
    const { content, chunks, leafCount } = await openPartialSeed(resolvePath(dest), this.#deps.config.journal)
    if (!this.#deps.registry.addIfAbsent(content)) {
      await content.reader.close()
      throw new InvalidArgumentError('this engine already serves that content id')
    }
    const ticket = encodeSwarmTicket({ cid: content.cid, providers: [this.#deps.self()] })
    return { ticket, cid: content.cid, chunks, leafCount }
  }

  unpublish(cid: Uint8Array): void {
    this.#deps.registry.unpublish(cid)
    const pack = this.#packs.get(hex(cid))
    if (pack === undefined) return
    this.#packs.delete(hex(cid))
    this.#deps.registry.unpublish(pack)
  }
}

function hex(cid: Uint8Array): string {
  return Buffer.from(cid).toString('hex')
}
