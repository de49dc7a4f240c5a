/**
 * The providers of one fetch by content id: the first ones before it starts, and more while it
 * runs (seeders that join later, receivers that serve what they have). Every provider is handed
 * out once, at most `maxProviders` per fetch.
 */
import type { DhtOptions } from '../engine/config/types.ts'
import { AbortedError, NoProviderError } from '../errors.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { ContentRouting } from './content-routing.ts'

/** After the first provider is found, how long the first lookup may go on finding others. */
const SETTLE_MS = 1_000
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

  constructor(routing: ContentRouting, cid: Uint8Array, o: SearchOptions) {
    this.#routing = routing
    this.#cid = cid
    this.#o = o
  }

  /** Providers handed out so far. */
  get found(): number {
    return this.#given.size
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
   * The first providers: lookups run until one finds a provider, which then goes on for up to a
   * second more (so a fetch starts with several, and a lying first record is not all it has).
   * Fails with NO_PROVIDER after `lookupMs` without one.
   */
  async first(signal: AbortSignal): Promise<Provider[]> {
    const deadline = AbortSignal.timeout(this.#o.lookupMs)
    const out: Provider[] = []
    while (out.length === 0) {
      const settle = new AbortController()
      const lookup = AbortSignal.any([signal, deadline, settle.signal])
      let timer: NodeJS.Timeout | undefined
      try {
        for await (const p of this.#routing.findProviders(this.#cid, lookup)) {
          const took = this.#take(p)
          if (took === 'full') break
          if (took === 'known') continue
          out.push(p)
          timer ??= setTimeout(() => settle.abort(), SETTLE_MS)
        }
      } finally {
        clearTimeout(timer)
      }
      if (signal.aborted) throw new AbortedError('the transfer was cancelled')
      if (out.length > 0) break
      if (deadline.aborted) {
        throw new NoProviderError(
          `no provider of this content id was found on the DHT in ${this.#o.lookupMs} ms: check that a seeder announced it (haul send --dht) and that --bootstrap reaches the same DHT`,
        )
      }
      await pause(FIRST_RETRY_MS, AbortSignal.any([signal, deadline]))
    }
    return out
  }

  /**
   * Looks again every `refreshMs` until `signal` aborts, calling `add` with each provider not
   * handed out before; stops once `maxProviders` were. Lookup failures wait for the next round.
   */
  async keepLooking(add: (p: Provider) => void, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.#given.size < this.#o.maxProviders) {
      await pause(this.#o.refreshMs, signal)
      if (signal.aborted) return
      try {
        for await (const p of this.#routing.findProviders(this.#cid, signal)) {
          const took = this.#take(p)
          if (took === 'full') return
          if (took === 'new') add(p)
        }
      } catch {
        // The DHT is unreachable for now; the transfer goes on with the providers it has.
      }
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
