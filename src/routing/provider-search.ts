/**
 * The providers of one fetch by content id: the first ones before it starts, and more while it
 * runs (seeders that join later, receivers that serve what they have). Every provider is handed
 * out once, at most `maxProviders` per fetch.
 *
 * Beside the DHT lookups, the peers this engine joined the DHT through are asked directly
 * whether they serve the content, as bitswap asks the peers it is connected to: a bootstrap
 * peer is often the seeder itself (`haul get <cid> --bootstrap <the sender's address>`), and
 * asking it costs one request where a lookup on a DHT that is still forming, or on a loaded
 * machine, can take the whole `lookupMs` (seen: 50 receivers joining one seeder on two cores,
 * lookups of 8–12 s in which most queries timed out, and 11 of the 50 ending with NO_PROVIDER).
 */
import type { DhtOptions } from '../engine/config/types.ts'
import { AbortedError, NoProviderError } from '../errors.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import { pause } from '../util/abort.ts'
import type { ContentRouting } from './content-routing.ts'

/** Pause between lookups while none has found a provider. */
const FIRST_RETRY_MS = 500
/** Longest pause between asking the neighbours again while no provider is known. */
const NEIGHBOUR_RETRY_MAX_MS = 4_000

export type SearchOptions = Pick<DhtOptions, 'maxProviders' | 'lookupMs' | 'refreshMs'>

/** Whether `provider` serves the content (never rejects: a failure is a no). */
export type AskProvider = (provider: Provider, signal: AbortSignal) => Promise<boolean>

/** Peers to ask directly, and how. */
export interface Neighbours {
  readonly peers: readonly Provider[]
  readonly ask: AskProvider
}

export class ProviderSearch {
  readonly #routing: ContentRouting
  readonly #cid: Uint8Array
  readonly #o: SearchOptions
  readonly #neighbours: Neighbours | undefined
  readonly #given = new Set<string>()
  /** When the last new provider was handed out (or the search began). */
  #lastFoundAt = performance.now()
  /** Settles with the first provider handed out. */
  readonly #first = Promise.withResolvers<Provider>()
  #handedFirst = false
  /** Providers the first lookup found after its first, until keepLooking takes them (at most maxProviders). */
  readonly #later: Provider[] = []
  #add: ((p: Provider) => void) | undefined
  /** The first lookup, going on after its first provider. */
  #rest: Promise<void> | undefined
  /** Ends the first lookup with the fetch (keepLooking's signal). */
  readonly #stop = new AbortController()

  constructor(routing: ContentRouting, cid: Uint8Array, o: SearchOptions, neighbours?: Neighbours) {
    this.#routing = routing
    this.#cid = cid
    this.#o = o
    this.#neighbours = neighbours
  }

  /**
   * Whether more providers may still come: fewer than `maxProviders` were handed out, and the
   * last new one came less than `lookupMs` ago. A fetch whose providers all lack the content
   * retries while this holds (FetchJobDeps.stillLooking), so liars found first do not end it.
   */
  stillLooking(): boolean {
    return this.#given.size < this.#o.maxProviders && performance.now() - this.#lastFoundAt < this.#o.lookupMs
  }

  /**
   * The first provider: lookups run until one finds a provider, or a neighbour says it serves the
   * content, and the fetch starts with it at once. That lookup goes on: what else it finds reaches
   * the fetch through `keepLooking` (a lying first record is then not all it has; see also
   * `stillLooking`). Fails with NO_PROVIDER after `lookupMs` without one.
   */
  async first(signal: AbortSignal): Promise<Provider[]> {
    const deadline = AbortSignal.timeout(this.#o.lookupMs)
    const searching = AbortSignal.any([signal, deadline, this.#stop.signal])
    void this.#askNeighbours(searching)
    for (;;) {
      const run = this.#lookup(searching, (p) => this.#hand(p)).catch(() => {
        // An unreachable DHT: the next lookup, or NO_PROVIDER at the deadline.
      })
      const first = await Promise.race([this.#first.promise, run.then(() => undefined)])
      if (first !== undefined) {
        this.#rest = run
        return [first]
      }
      if (signal.aborted) throw new AbortedError('the transfer was cancelled')
      if (deadline.aborted) {
        throw new NoProviderError(
          `no provider of this content id was found on the DHT in ${this.#o.lookupMs} ms: check that a seeder announced it (haul send --dht) and that --bootstrap reaches the same DHT`,
        )
      }
      await pause(FIRST_RETRY_MS, searching)
    }
  }

  /**
   * Calls `add` with what the first lookup found after its first provider, then looks again every
   * `refreshMs` until `signal` aborts, with each provider not handed out before; stops once
   * `maxProviders` were. Lookup failures wait for the next round.
   */
  async keepLooking(add: (p: Provider) => void, signal: AbortSignal): Promise<void> {
    signal.addEventListener('abort', () => this.#stop.abort(), { once: true })
    this.#add = add
    for (const p of this.#later.splice(0)) add(p)
    await this.#rest
    while (!signal.aborted && this.#given.size < this.#o.maxProviders) {
      await pause(this.#o.refreshMs, signal)
      if (signal.aborted) return
      try {
        await this.#lookup(signal, add)
      } catch {
        // The DHT is unreachable for now; the transfer goes on with the providers it has.
      }
    }
  }

  /** A new provider found before the fetch runs: the first one, else to the fetch (or kept for it). */
  #hand(p: Provider): void {
    if (this.#handedFirst === false) {
      this.#handedFirst = true
      this.#first.resolve(p)
    } else if (this.#add !== undefined) this.#add(p)
    else this.#later.push(p)
  }

  /**
   * Asks every neighbour at once; each that serves the content is handed out like a found
   * provider. Until one is found, those that said no are asked again, after FIRST_RETRY_MS and
   * then twice as long each time (at most NEIGHBOUR_RETRY_MAX_MS): a no may be a seeder too busy to
   * answer in time (fifty receivers asking it at once on two cores), or one that publishes a
   * moment later. Ends with the search.
   */
  async #askNeighbours(signal: AbortSignal): Promise<void> {
    const n = this.#neighbours
    if (n === undefined) return
    for (let wait = FIRST_RETRY_MS; !signal.aborted; wait = Math.min(2 * wait, NEIGHBOUR_RETRY_MAX_MS)) {
      await Promise.all(
        n.peers.map(async (p) => {
          if (this.#given.has(p.peerId)) return
          if ((await n.ask(p, signal)) && !signal.aborted && this.#take(p) === 'new') this.#hand(p)
        }),
      )
      if (this.#handedFirst) return
      await pause(wait, signal)
    }
  }

  /** One lookup: each provider not handed out before goes to `onNew`; it stops once `maxProviders` were. */
  async #lookup(signal: AbortSignal, onNew: (p: Provider) => void): Promise<void> {
    for await (const p of this.#routing.findProviders(this.#cid, signal)) {
      const took = this.#take(p)
      if (took === 'full') return
      if (took === 'new') onNew(p)
    }
  }

  /** Records `p` as handed out, unless it was before or `maxProviders` were. */
  #take(p: Provider): 'new' | 'known' | 'full' {
    if (this.#given.has(p.peerId)) return 'known'
    if (this.#given.size >= this.#o.maxProviders) return 'full'
    this.#given.add(p.peerId)
    this.#lastFoundAt = performance.now()
    return 'new'
  }
}
