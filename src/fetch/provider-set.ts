/**
 * The providers of one fetch: a PeerLink per peer (the first entry for a peer kept, at most
 * MAX_PROVIDERS), the secrets they present, and what the job reads or does across all of them
 * (bytes received, whether any was reached, per-peer figures, a reset on transfer retry, the
 * release at the end). The links outlive coordinator runs: bans and figures persist across them.
 */
import type { HaulError } from '../errors.ts'
import type { SessionPool } from '../session/session-pool.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { SwarmStats } from '../transfer/transfer-types.ts'
import { PeerLink } from './peer-link.ts'

const MAX_PROVIDERS = 64

export class ProviderSet {
  /** By peer id; handed to each coordinator run (FetchCoordinator). */
  readonly links = new Map<string, PeerLink>()
  /**
   * The secrets this fetch presents, one per provider that has one (grows with add). The chunks
   * it shares (partial seeding) go to requests presenting one of them; to anyone when it started
   * with none (public content).
   */
  readonly secrets: Uint8Array[] = []

  /** Adds `p`; returns its new link, or undefined when its peer is already here or the set is full. */
  add(p: Provider): PeerLink | undefined {
    if (this.links.has(p.peerId) || this.links.size >= MAX_PROVIDERS) return undefined
    const link = new PeerLink({
      peerId: p.peerId,
      addrs: [...p.addrs],
      ...(p.secret === undefined ? {} : { secret: p.secret }),
    })
    this.links.set(p.peerId, link)
    if (p.secret !== undefined && !this.secrets.some((s) => Buffer.from(s).equals(p.secret!))) {
      this.secrets.push(p.secret)
    }
    return link
  }

  /** Chunk bytes received from all providers, verified or not (PeerLink.chunkBytes). */
  chunkBytes(): number {
    let received = 0
    for (const l of this.links.values()) received += l.chunkBytes
    return received
  }

  /** Bytes of chunks on their way from all providers, not yet whole (PeerLink.arrivingBytes). */
  arrivingBytes(): number {
    let arriving = 0
    for (const l of this.links.values()) arriving += l.arrivingBytes
    return arriving
  }

  /** Some provider said hello on a stream in this fetch (PeerLink.reached). */
  reached(): boolean {
    return [...this.links.values()].some((l) => l.reached)
  }

  /** Some provider was lost to the network (gave up after reconnects; not banned). */
  anyGone(): boolean {
    return [...this.links.values()].some((l) => l.gone !== undefined)
  }

  /** Providers not dropped for misbehaving: the ones a (re)connect tries. */
  candidates(): PeerLink[] {
    return [...this.links.values()].filter((l) => l.banned === undefined)
  }

  /** A connected provider, if any. */
  up(): PeerLink | undefined {
    return [...this.links.values()].find((l) => l.up)
  }

  /** What each provider did in this fetch (SwarmStats.peers). */
  stats(): SwarmStats['peers'] {
    return [...this.links.values()].map((l) => {
      const out = (l.banned ?? l.gone)?.code
      return {
        peerId: l.id,
        verifiedBytes: l.verifiedBytes,
        failures: l.failures,
        stalls: l.stalls,
        ...(l.route === undefined ? {} : { route: l.route }),
        ...(out === undefined ? {} : { out }),
      }
    })
  }

  /** A transfer retry: every provider not banned may be tried again, on a new stream. */
  reset(why: HaulError): void {
    for (const l of this.links.values()) {
      l.gone = undefined
      l.attempts = 0
      l.drop(why)
    }
  }

  /** The transfer is complete: idle sessions go to `sessions`, the rest are reset. */
  release(sessions: SessionPool | undefined, why: HaulError): void {
    for (const l of this.links.values()) l.release(sessions, why)
  }

  /** The transfer ended without completing: every session is closed (see PeerLink.retire). */
  retire(sessions: SessionPool | undefined, why: HaulError): void {
    for (const l of this.links.values()) l.retire(sessions, why)
  }

  /** Resets every provider's stream. */
  drop(why: HaulError): void {
    for (const l of this.links.values()) l.drop(why)
  }
}
