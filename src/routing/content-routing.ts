/**
 * Finding providers by content id on libp2p's Kademlia DHT, and announcing what this engine
 * serves. The DHT itself is `@libp2p/kad-dht` in the engine's node (src/net/node.ts); this module
 * is haul's use of it: joining through bootstrap peers, keeping provider records fresh, and
 * reading records from the network as hostile input — a bounded number read per lookup, each
 * provider's addresses checked and ranked as a ticket's are, and this engine never its own
 * provider. A record that points at a peer without the content costs one refused request: the
 * fetch drops that provider like any other that lacks the content.
 */
import { type KadDHT, MessageType, type SingleKadDHT } from '@libp2p/kad-dht'
import { multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import type { DhtOptions } from '../engine/config/types.ts'
import { AbortedError, InternalError, PeerUnreachableError } from '../errors.ts'
import { ticketAddresses } from '../net/addresses.ts'
import type { Network } from '../net/network.ts'
import { ownPeerId } from '../net/peer-addr.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import { pause } from '../util/abort.ts'
import { contentKey } from './content-key.ts'

/** Longest address taken from a record (a ticket's bound too). */
const MAX_ADDR_CHARS = 512
/**
 * Rounds of dials to the bootstrap peers that fail outright (refused: nothing listens there; a
 * wrong peer id) before a start fails; rounds in which a dial timed out (a peer too busy to finish
 * a handshake) go on until `lookupMs`. The pause grows by JOIN_PAUSE_MS each round.
 */
const JOIN_ROUNDS = 3
const JOIN_PAUSE_MS = 500

/** How often the routing table's size is looked at for announcements to send again (see announce). */
const GROWTH_CHECK_MS = 1_000
/** kad-dht's K (its kBucketSize, left at the default): a record goes to the K peers closest to its key. */
const K_CLOSEST = 20

interface Announcement {
  readonly id: string
  readonly key: CID
  /** The first announcement: whether it reached the DHT. */
  first: Promise<boolean>
  timer: NodeJS.Timeout | undefined
  /** Announcements in a row that reached no peer. */
  misses: number
  /**
   * The routing table's size as the last announcement that reached a peer began (0: none has
   * yet): peers that joined while it ran may not have been sent the record.
   */
  reachedAt: number
  sending: boolean
}

export class ContentRouting {
  readonly #dht: KadDHT
  readonly #network: Network
  readonly #o: DhtOptions
  readonly #announced = new Map<string, Announcement>()
  readonly #stop = new AbortController()
  #growthTimer: NodeJS.Timeout | undefined
  /** Announcements sent again because the DHT grew, one at a time. */
  #growing: Promise<void> | undefined

  /** The peers named in `dht.bootstrap`, as providers to ask directly (ProviderSearch's neighbours). */
  readonly bootstrapPeers: readonly Provider[]

  private constructor(dht: KadDHT, network: Network, o: DhtOptions) {
    this.#dht = dht
    this.#network = network
    this.#o = o
    const byPeer = new Map<string, string[]>()
    for (const addr of o.bootstrap) {
      const peerId = ownPeerId(multiaddr(addr))
      if (peerId !== undefined && peerId !== network.peerId)
        byPeer.set(peerId, [...(byPeer.get(peerId) ?? []), addr])
    }
    this.bootstrapPeers = [...byPeer].map(([peerId, addrs]) => ({
      peerId,
      addrs: ticketAddresses(addrs, peerId),
    }))
  }

  /**
   * Joins the DHT through `o.bootstrap` (all dialed at once; one answering is enough), in rounds
   * (see JOIN_ROUNDS): a bootstrap peer that many join at once times some handshakes out (seen:
   * 50 receivers starting together on two cores, each failing three 10 s dials), and that should
   * not end a start, while a wrong address should fail it within seconds. With no bootstrap peer,
   * this node starts a DHT of its own that others join.
   */
  static async join(network: Network, o: DhtOptions, signal?: AbortSignal): Promise<ContentRouting> {
    const dht = network.dht
    if (dht === undefined) throw new InternalError('the DHT is on but the node runs none')
    const start = performance.now()
    let tried: PromiseSettledResult<void>[] = []
    let refused = 0
    for (let round = 0; o.bootstrap.length > 0; round++) {
      if (round > 0) await pause(JOIN_PAUSE_MS * round, signal)
      tried = await Promise.allSettled(o.bootstrap.map((addr) => network.connect(addr, signal)))
      if (signal?.aborted) throw new AbortedError()
      if (tried.some((t) => t.status === 'fulfilled')) break
      if (!tried.some((t) => t.status === 'rejected' && timedOut(t.reason))) refused++
      if (refused >= JOIN_ROUNDS || performance.now() - start >= o.lookupMs) break
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
   * the first peers to join a seeder's new DHT get its records within seconds. A record goes to
   * the peers closest to the content id among those the DHT knows then; once it knows twice as
   * many, those may no longer be the closest, and lookups that converge on the new closest would
   * miss the record, so it is sent again (seen: a seeder whose DHT grew from 16 to 50 peers in a
   * minute, its record held by the first 9 only, and receivers that found no provider in 30 s).
   * While the DHT has fewer than K peers every one of them is among the closest, so any growth
   * sends it again (at most once per GROWTH_CHECK_MS): a young DHT's late joiners hold it too.
   * Resolves whether the first announcement reached another peer; never rejects.
   */
  announce(cid: Uint8Array): Promise<boolean> {
    const id = hex(cid)
    const known = this.#announced.get(id)
    if (known !== undefined) return known.first
    const a: Announcement = {
      id,
      key: contentKey(cid),
      first: Promise.resolve(false),
      timer: undefined,
      misses: 0,
      reachedAt: 0,
      sending: false,
    }
    this.#announced.set(id, a)
    a.first = this.#send(a)
    this.#growthTimer ??= setInterval(() => this.#checkGrowth(), GROWTH_CHECK_MS).unref()
    return a.first
  }

  /** Stops announcing `cid` and forgets this engine's own record of it (others expire theirs). */
  async withdraw(cid: Uint8Array): Promise<void> {
    const id = hex(cid)
    const a = this.#announced.get(id)
    if (a === undefined) return
    this.#announced.delete(id)
    clearTimeout(a.timer)
    if (this.#announced.size === 0) {
      clearInterval(this.#growthTimer)
      this.#growthTimer = undefined
    }
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
    clearInterval(this.#growthTimer)
    for (const a of this.#announced.values()) clearTimeout(a.timer)
    this.#announced.clear()
  }

  /** Sends one announcement of `a` (unless one is under way) and schedules the next. */
  async #send(a: Announcement): Promise<boolean> {
    clearTimeout(a.timer)
    a.sending = true
    const before = this.#tableSize()
    const reached = await this.#provide(a.key)
    a.sending = false
    if (this.#announced.get(a.id) !== a || this.#stop.signal.aborted) return reached
    a.misses = reached ? 0 : a.misses + 1
    if (reached) a.reachedAt = Math.max(1, before)
    const wait = reached ? this.#o.announceMs : Math.min(this.#o.refreshMs, 1_000 * 2 ** (a.misses - 1))
    a.timer = setTimeout(() => void this.#send(a), wait).unref()
    return reached
  }

  /** Sends again, one at a time, the announcements the DHT has since doubled past (see announce). */
  #checkGrowth(): void {
    if (this.#growing !== undefined) return
    const size = this.#tableSize()
    const grown = (a: Announcement): boolean =>
      size >= 2 * a.reachedAt || (a.reachedAt < K_CLOSEST && size > a.reachedAt)
    const due = [...this.#announced.values()].filter((a) => a.reachedAt > 0 && grown(a))
    if (due.length === 0) return
    this.#growing = (async () => {
      for (const a of due) {
        if (this.#announced.get(a.id) === a && !a.sending && !this.#stop.signal.aborted) await this.#send(a)
      }
    })().finally(() => {
      this.#growing = undefined
    })
  }

  /** Peers in the DHT's routing table. */
  #tableSize(): number {
    return (this.#dht as Partial<SingleKadDHT>).routingTable?.size ?? 0
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

/** Whether a dial failed for want of time (somewhere in its causes) rather than outright. */
function timedOut(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined; e != null; e = e.cause as typeof e) {
    if (e.name === 'TimeoutError') return true
    if (e instanceof AggregateError && e.errors.some(timedOut)) return true
  }
  return false
}

function hex(cid: Uint8Array): string {
  return Buffer.from(cid).toString('hex')
}
