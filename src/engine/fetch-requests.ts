/**
 * What the text given to `Engine.fetch` and `Engine.fetchCollection` names, and where it goes:
 * a file's ticket to the engine's fetches, a collection's ticket to fetchCollection
 * (src/collection/), a content id alone to the engine's fetches with a provider search on the
 * DHT. The last DECODED_TICKETS tickets are kept decoded.
 */
import {
  type CollectionFetchOptions,
  type CollectionResult,
  fetchCollection,
} from '../collection/fetch-collection.ts'
import { cidFromString, looksLikeCid } from '../descriptor/cid.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import type { ContentRouting } from '../routing/content-routing.ts'
import { ProviderSearch } from '../routing/provider-search.ts'
import { DecodedTickets } from '../ticket/multi-ticket.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { FetchOptions, TransferHandle } from './api-types.ts'
import type { EngineConfig } from './config.ts'
import type { Fetches } from './fetches.ts'

/** Decoded tickets an engine keeps for its next fetches (see DecodedTickets). */
export const DECODED_TICKETS = 256

/** What resolving a fetch request needs of the engine. */
export interface FetchRequestsDeps {
  readonly config: EngineConfig
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
  /** Where a file's fetch runs, a collection's files' fetches too. */
  readonly fetches: Fetches
  /** The DHT, when the engine runs one. */
  readonly routing: () => ContentRouting | undefined
}

/** One per engine: its tickets decoded once, shared by their fetches. */
export class FetchRequests {
  readonly #deps: FetchRequestsDeps
  readonly #tickets = new DecodedTickets(DECODED_TICKETS)

  constructor(deps: FetchRequestsDeps) {
    this.#deps = deps
  }

  /** A file's ticket, or with the DHT a content id alone: see `Engine.fetch`. */
  fetch(ticketText: string, dest: string, opts: FetchOptions): TransferHandle {
    const { fetches } = this.#deps
    if (looksLikeCid(ticketText)) {
      return fetches.start(
        { cid: cidFromString(ticketText), providers: [] },
        dest,
        opts,
        this.#search(ticketText),
      )
    }
    const decoded = this.#tickets.decode(ticketText)
    if (decoded.kind === 'collection') {
      throw new InvalidArgumentError(
        'this ticket names a folder (a collection): fetch it with fetchCollection (haul get does)',
      )
    }
    return fetches.start(decoded, dest, opts)
  }

  /** A collection's ticket: see `Engine.fetchCollection`. */
  fetchCollection(ticketText: string, dest: string, opts: CollectionFetchOptions): Promise<CollectionResult> {
    const { config, pool, budget, fetches } = this.#deps
    const decoded = this.#tickets.decode(ticketText)
    if (decoded.kind !== 'collection') {
      return Promise.reject(
        new InvalidArgumentError(
          'this ticket names one file, not a folder: fetch it with fetch (haul get does)',
        ),
      )
    }
    return fetchCollection(
      {
        pool,
        budget,
        chunking: config.chunking,
        fetchContent: (ticket, path, o) => fetches.start(ticket, path, o),
      },
      decoded,
      dest,
      opts,
    )
  }

  /** How a fetch by content id alone finds its providers: on the DHT, which it needs (cidNeedsDht). */
  #search(text: string): ProviderSearch {
    const { config, fetches } = this.#deps
    const routing = this.#deps.routing()
    if (routing === undefined) throw cidNeedsDht()
    const cid = cidFromString(text)
    return new ProviderSearch(routing, cid, config.dht, {
      peers: routing.bootstrapPeers,
      ask: fetches.asker(cid),
    })
  }
}

/** A fetch by content id alone on an engine without the DHT. */
export function cidNeedsDht(): InvalidArgumentError {
  return new InvalidArgumentError(
    'a content id alone is fetched through the DHT: create the engine with dht.bootstrap (haul get --bootstrap <addr>), or fetch a ticket',
  )
}
