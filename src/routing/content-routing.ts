/**
 * Finding providers by content id on libp2p's Kademlia DHT, and announcing what this engine
 * serves. The DHT itself is `@libp2p/kad-dht` in the engine's node (src/net/node.ts); this module
 * is haul's use of it: joining through bootstrap peers, keeping provider records fresh, and
 * reading records from the network as hostile input — a bounded number read per lookup, each
 * provider's addresses checked and ranked as a ticket's are, and this engine never its own
 * provider. A record that points at a peer without the content costs one refused request: the
 * fetch drops that provider like any other that lacks the content.
 */
import { type KadDHT, MessageType } from '@libp2p/kad-dht'
import type { CID } from 'multiformats/cid'
import type { DhtOptions } from '../engine/config/types.ts'
import { AbortedError, InternalError, PeerUnreachableError } from '../errors.ts'
import { ticketAddresses } from '../net/addresses.ts'
import type { Network } from '../net/network.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import { contentKey } from './content-key.ts'

/** Longest address taken from a record (a ticket's bound too). */
const MAX_ADDR_CHARS = 512
/** Rounds of dials to the bootstrap peers before a start fails, the pause growing by this much each. */
const JOIN_ROUNDS = 3
const JOIN_PAUSE_MS = 500

interface Announcement {
  readonly key: CID
  /** The first announcement: whether it reached the DHT. */
  readonly first: Promise<boolean>
  timer: NodeJS.Timeout | undefined
}

export class ContentRouting {
  readonly #dht: KadDHT
  readonly #network: Network
  readonly #o: DhtOptions
  readonly #announced = new Map<string, Announcement>()
  readonly #stop = new AbortController()

  private constructor(dht: KadDHT, network: Network, o: DhtOptions) {
    this.#dht = dht
    this.#network = network
    this.#o = o
  }

  /**
   * Joins the DHT through `o.bootstrap` (all dialed at once; one answering is enough), in up to
   * JOIN_ROUNDS rounds: a bootstrap peer that many join at once resets some handshakes (seen: 50
   * receivers starting together on two cores), and that should not end a start. With no
   * bootstrap peer, this node starts a DHT of its own that others join.
   */
  static async join(network: Network, o: DhtOptions, signal?: AbortSignal): Promise<ContentRouting> {
    const dht = network.dht
    if (dht === undefined) throw new InternalError('the DHT is on but the node runs none')
    let tried: PromiseSettledResult<void>[] = []
    for (let round = 0; round < JOIN_ROUNDS && o.bootstrap.length > 0; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, JOIN_PAUSE_MS * round))
      tried = await Promise.allSettled(o.bootstrap.map((addr) => network.connect(addr, signal)))
      if (signal?.aborted) throw new AbortedError()
      if (tried.some((t) => t.status === 'fulfilled')) break
    }
    if (tried.length > 0 && tried.every((t) => t.status === 'rejected')) {
      const why = tried.map((t) => ((t as PromiseRejectedResult).reason as Error).message).join('; ')
      throw new PeerUnreachableError(
        `cannot join the DHT: no bootstrap peer answered (${why}); check the --bootstrap addresses and that those peers run haul with --dht`,
      )
    }
    return new ContentRouting(dht, network, o)
  }

  /**
   * Announces this engine as a provider of `cid` now and every `announceMs`; while no peer takes
   * the record (a DHT that had no other peer yet), again after 1 s, doubling up to `refreshMs`:
   * the first peers to join a seeder's new DHT get its records within seconds. Resolves whether
   * the first announcement reached another peer; never rejects.
   */
  announce(cid: Uint8Array): Promise<boolean> {
    const id = hex(cid)
    const known = this.#announced.get(id)
    if (known !== undefined) return known.first
    const key = contentKey(cid)
    const first = this.#provide(key)
    const a: Announcement = { key, first, timer: undefined }
    this.#announced.set(id, a)
    let misses = 0
    const next = (reached: boolean): void => {
      if (this.#announced.get(id) !== a || this.#stop.signal.aborted) return
      misses = reached ? 0 : misses + 1
      const wait = reached ? this.#o.announceMs : Math.min(this.#o.refreshMs, 1_000 * 2 ** (misses - 1))
      a.timer = setTimeout(() => void this.#provide(key).then(next), wait)
      a.timer.unref()
    }
    void first.then(next)
    return first
  }

  /** Stops announcing `cid` and forgets this engine's own record of it (others expire theirs). */
  async withdraw(cid: Uint8Array): Promise<void> {
    const id = hex(cid)
    const a = this.#announced.get(id)
    if (a === undefined) return
    this.#announced.delete(id)
    clearTimeout(a.timer)
    await this.#dht.cancelReprovide(a.key).catch(() => {})
  }

  /** Content ids announced now. */
  get announcing(): number {
    return this.#announced.size
  }

  /**
   * Providers of `cid` one lookup finds, each once, checked (see the module comment): at most
   * `maxRecords` records are read. Ends when the lookup does, or with the signal.
   */
  async *findProviders(cid: Uint8Array, signal: AbortSignal): AsyncGenerator<Provider> {
    const self = this.#network.peerId
    const seen = new Set<string>()
    let records = 0
    const lookup = AbortSignal.any([signal, this.#stop.signal])
    try {
      for await (const event of this.#dht.findProviders(contentKey(cid), { signal: lookup })) {
        if (event.name !== 'PROVIDER') continue
        for (const info of event.providers) {
          if (++records > this.#o.maxRecords) return
          const peerId = info.id.toString()
          if (peerId === self || seen.has(peerId)) continue
          const addrs = ticketAddresses(
            info.multiaddrs.map((m) => m.toString()).filter((a) => a.length <= MAX_ADDR_CHARS),
            peerId,
          )
          if (addrs.length === 0) continue
          seen.add(peerId)
          yield { peerId, addrs }
        }
      }
    } catch (err) {
      // A lookup cut by its signal ends quietly; the caller knows why it stopped.
      if (!lookup.aborted) throw err
    }
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    for (const a of this.#announced.values()) clearTimeout(a.timer)
    this.#announced.clear()
  }

  async #provide(key: CID): Promise<boolean> {
    const signal = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#o.lookupMs)])
    let reached = false
    try {
      for await (const event of this.#dht.provide(key, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageType === MessageType.ADD_PROVIDER) reached = true
      }
    } catch {
      // An empty DHT, or peers that went away: the next announcement tries again.
    }
    return reached
  }
}

function hex(cid: Uint8Array): string {
  return Buffer.from(cid).toString('hex')
}
