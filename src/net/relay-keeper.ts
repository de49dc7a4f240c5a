import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { describeDialError } from './peer-addr.ts'

/** How often each configured relay's reservation is checked, and the first wait after a loss. */
export const RELAY_CHECK_MS = 5_000
/** The longest wait between two attempts to reserve again on a relay that stays away. */
export const RELAY_RETRY_MAX_MS = 60_000

/** A reservation lost, or made again. */
export type RelayChange =
  | { readonly relay: string; readonly state: 'lost' }
  | { readonly relay: string; readonly state: 'reserved' }
  | { readonly relay: string; readonly state: 'retrying'; readonly reason: string; readonly inMs: number }

type Multiaddr = ReturnType<typeof multiaddr>
/** A libp2p listener; a circuit relay listener keeps the relay it reserved on as `relay`. */
interface Listener {
  listen(addr: Multiaddr): Promise<void>
  relay?: { toString(): string }
}
/** A configured relay: its address, peer id, whether its slot is held, and the wait before the next try. */
interface Relay {
  readonly addr: string
  readonly id: string
  wait: number
  next: number
  held: boolean
}

/** The part of libp2p's transport manager used here (Libp2pNode.components). */
interface Transports {
  listen(addrs: Multiaddr[]): Promise<void>
  getListeners(): Listener[]
}

/**
 * Keeps this node's slot on each configured relay. libp2p reserves a configured relay once, when
 * the node starts listening on its `/p2p-circuit` address; when the connection to the relay
 * closes (the relay restarted, the link went down) the reservation and the relayed address are
 * dropped and never made again, so a sender behind a NAT would stay unreachable for good. The
 * keeper checks every RELAY_CHECK_MS (and at once when a connection to a relay closes) that each
 * relay's address is still among the node's, and listens on it again when not: at once, then
 * with the wait doubling up to RELAY_RETRY_MAX_MS while the relay stays away.
 */
export class RelayKeeper {
  readonly #node: Libp2p
  readonly #relays: {
    readonly addr: string
    readonly id: string
    wait: number
    next: number
    held: boolean
  }[]
  readonly #onChange: (c: RelayChange) => void
  #timer: NodeJS.Timeout | undefined
  #busy = false
  #stopped = false

  constructor(node: Libp2p, relays: readonly string[], onChange: (c: RelayChange) => void = () => {}) {
    this.#node = node
    this.#onChange = onChange
    this.#relays = relays.map((addr) => ({
      addr,
      id: addr.slice(addr.lastIndexOf('/p2p/') + 5),
      wait: RELAY_CHECK_MS,
      next: 0,
      held: true,
    }))
    if (this.#relays.length === 0) return
    node.addEventListener('connection:close', this.#onClose)
    this.#timer = setInterval(() => void this.check(), RELAY_CHECK_MS)
    this.#timer.unref()
  }

  /** Checks every relay and reserves again where a slot was lost and its wait is over. */
  async check(): Promise<void> {
    if (this.#busy || this.#stopped) return
    this.#busy = true
    try {
      for (const r of this.#relays) {
        if (this.#stopped) return
        if (this.#reserved(r.id)) {
          this.#held(r)
          continue
        }
        if (r.held) {
          r.held = false
          this.#onChange({ relay: r.addr, state: 'lost' })
        }
        if (performance.now() < r.next) continue
        try {
          await this.#reserve(r.id, multiaddr(`${r.addr}/p2p-circuit`))
        } catch (err) {
          if (this.#stopped) return
          r.next = performance.now() + r.wait
          this.#onChange({ relay: r.addr, state: 'retrying', reason: describeDialError(err), inMs: r.wait })
          r.wait = Math.min(2 * r.wait, RELAY_RETRY_MAX_MS)
          continue
        }
        if (this.#reserved(r.id)) this.#held(r)
      }
    } finally {
      this.#busy = false
    }
  }

  /** `r`'s slot is held: said once when it was not, its waits reset. */
  #held(r: Relay): void {
    if (!r.held) this.#onChange({ relay: r.addr, state: 'reserved' })
    r.held = true
    r.wait = RELAY_CHECK_MS
    r.next = 0
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#node.removeEventListener('connection:close', this.#onClose)
  }

  readonly #onClose = (evt: CustomEvent<{ remotePeer: { toString(): string } }>): void => {
    const peer = evt.detail.remotePeer.toString()
    // After libp2p's own handler has dropped the reservation of that connection.
    if (this.#relays.some((r) => r.id === peer)) setTimeout(() => void this.check(), 100).unref()
  }

  #reserved(relayId: string): boolean {
    const marker = `/p2p/${relayId}/p2p-circuit`
    return this.#node.getMultiaddrs().some((ma) => ma.toString().includes(marker))
  }

  /**
   * Listens on `addr` again through the listener that reserved on the relay before (it keeps the
   * relay's id), so a relay that comes and goes does not leave a listener behind each time.
   */
  async #reserve(relayId: string, addr: Multiaddr): Promise<void> {
    const transports = (this.#node as unknown as { components: { transportManager: Transports } }).components
      .transportManager
    const own = transports.getListeners().find((l) => l.relay?.toString() === relayId)
    if (own !== undefined) await own.listen(addr)
    else await transports.listen([addr])
  }
}
