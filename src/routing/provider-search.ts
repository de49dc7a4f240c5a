/**
 * The providers of one fetch by content id: the first ones before it starts, and more while it
 * runs (seeders that join later, receivers that serve what they have). Every provider is handed
 * out once, at most `maxProviders` per fetch.
 */
import type { DhtOptions } from '../engine/config/types.ts'
import { AbortedError, NoProviderError } from '../errors.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { ContentRouting } from './content-routing.ts'

/** Pause between lookups while none has found a provider. */
const FIRST_RETRY_MS = 500

export type SearchOptions = Pick<DhtOptions, 'maxProviders' | 'lookupMs' | 'refreshMs'>

export class ProviderSearch {
  readonly #routing: ContentRouting
  readonly #cid: Uint8Array
  readonly #o: SearchOptions
  readonly #given = new Set<string>()
  /** When the last new provider was handed out (or the search began). */
  #lastFoundAt = performance.now()
  #handedFirst = false
  /** Providers the first lookup found after its first, until keepLooking takes them (at most maxProviders). */
  readonly #later: Provider[] = []
  #add: ((p: Provider) => void) | undefined
  /** The first lookup, going on after its first provider. */
  #rest: Promise<void> | undefined
  /** Ends the first lookup with the fetch (keepLooking's signal). */
  readonly #stop = new AbortController()

  constructor(routing: ContentRouting, cid: Uint8Array, o: SearchOptions) {
    this.#routing = routing
    this.#cid = cid
    this.#o = o
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
   * The first provider: lookups run until one finds a provider, and the fetch starts with it at
   * once. That lookup goes on: what else it finds reaches the fetch through `keepLooking` (a
   * lying first record is then not all it has; see also `stillLooking`). Fails with NO_PROVIDER
   * after `lookupMs` without one.
   */
  async first(signal: AbortSignal): Promise<Provider[]> {
    const deadline = AbortSignal.timeout(this.#o.lookupMs)
    for (;;) {
      const lookup = AbortSignal.any([signal, deadline, this.#stop.signal])
      const found = Promise.withResolvers<Provider | undefined>()
      const run = (async () => {
        try {
          await this.#lookup(lookup, (p) => this.#hand(p, found))
        } catch {
          // An unreachable DHT: the next lookup, or NO_PROVIDER at the deadline.
        }
        found.resolve(undefined)
      })()
      const first = await found.promise
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
      await pause(FIRST_RETRY_MS, AbortSignal.any([signal, deadline]))
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

  /** A new provider from the first lookup: the first one, else to the fetch (or kept for it). */
  #hand(p: Provider, first: PromiseWithResolvers<Provider | undefined>): void {
    if (this.#handedFirst === false) {
      this.#handedFirst = true
      first.resolve(p)
    } else if (this.#add !== undefined) this.#add(p)
    else this.#later.push(p)
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

/** Waits `ms`, or less when `signal` aborts (never throws). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
