/**
 * Which of a node's addresses go into a ticket, and in what order. A node listening on every
 * interface has an address per interface and family; a remote receiver can use only some of
 * them, and a receiver dials them in ticket order, so the most useful come first:
 *
 *   1. public addresses (reachable from anywhere),
 *   2. private LAN addresses (RFC 1918, CGNAT, IPv6 unique-local),
 *   3. loopback, only when no public or private address exists (a node told to listen on
 *      127.0.0.1),
 *   4. relayed addresses (`/p2p-circuit`: through a relay, when the direct ones fail); through
 *      the relay's loopback address only when the relay gave no other.
 *
 * IPv4 goes before IPv6 within a class (more networks route it). Link-local addresses are
 * dropped (they need an interface scope a multiaddr does not carry), as is each address's
 * trailing `/p2p/<peer id>`: the ticket names the peer once, and the receiver puts it back
 * (peer-addr.ts). At most `MAX_TICKET_ADDRS` are kept, so a host with many interfaces still
 * gets a ticket that fits a chat message; the cut keeps an address of each family and a relayed
 * one, when there are.
 */
import { createServer } from 'node:net'
import { isLinkLocalIp, isPrivateIp } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'

/** Addresses per provider in a ticket written by this node. */
export const MAX_TICKET_ADDRS = 8

type Reach = 'public' | 'private' | 'relayed' | 'loopback' | 'unusable'

const ORDER: readonly Reach[] = ['public', 'private', 'loopback', 'relayed']

/** An address (or a connection's remote address) through a circuit relay. */
export function isRelayedAddress(addr: Multiaddr | string): boolean {
  return addr.toString().includes('/p2p-circuit')
}

/** How far an address reaches, from its host part. */
export function reachOf(addr: string): Reach {
  let components: ReturnType<ReturnType<typeof multiaddr>['getComponents']>
  try {
    components = multiaddr(addr).getComponents()
  } catch {
    return 'unusable'
  }
  if (isRelayedAddress(addr)) return 'relayed'
  const host = components[0]
  if (host === undefined) return 'unusable'
  if (host.name === 'dns' || host.name === 'dns4' || host.name === 'dns6' || host.name === 'dnsaddr')
    return 'public'
  if (host.name !== 'ip4' && host.name !== 'ip6') return 'unusable'
  const ip = host.value ?? ''
  if (ip === '0.0.0.0' || ip === '::') return 'unusable'
  if (ip.startsWith('127.') || ip === '::1') return 'loopback'
  if (isLinkLocalIp(ip)) return 'unusable'
  return isPrivateIp(ip) === true ? 'private' : 'public'
}

/** `addr` without a trailing `/p2p/<peerId>` (a relayed address keeps its relay's). */
export function withoutOwnPeer(addr: string, peerId: string): string {
  const suffix = `/p2p/${peerId}`
  return addr.endsWith(suffix) ? addr.slice(0, -suffix.length) : addr
}

/**
 * The addresses to put in a ticket, most useful first, without duplicates, at most `max`.
 * Loopback addresses appear only when no other address is usable.
 */
export function ticketAddresses(addrs: readonly string[], peerId: string, max = MAX_TICKET_ADDRS): string[] {
  const byReach = new Map<Reach, string[]>(ORDER.map((r) => [r, []]))
  const seen = new Set<string>()
  for (const a of addrs) {
    const bare = withoutOwnPeer(a, peerId)
    if (seen.has(bare)) continue
    seen.add(bare)
    byReach.get(reachOf(bare))?.push(bare)
  }
  const family = (a: string): number => (a.startsWith('/ip6/') || a.startsWith('/dns6/') ? 1 : 0)
  const ranked: string[] = []
  // A relay listening on every interface gives its loopback address with the others: through it a
  // receiver would dial its own machine. Kept only when the relay has nothing else.
  const relayed = byReach.get('relayed')!
  const viaAway = relayed.filter((a) => reachOf(a.slice(0, a.indexOf('/p2p/'))) !== 'loopback')
  if (viaAway.length > 0) byReach.set('relayed', viaAway)
  for (const reach of ORDER) {
    if (reach === 'loopback' && byReach.get('public')!.length + byReach.get('private')!.length > 0) continue
    // A stable sort: within a family the node's own order stays.
    ranked.push(...byReach.get(reach)!.sort((a, b) => family(a) - family(b)))
  }
  // Cut to `max`, the best direct address of each family and the best relayed one kept first: a
  // host with many IPv4 interfaces (container bridges) must not cost an IPv6-only receiver its
  // only way in, nor a receiver behind a NAT the relay.
  const direct = ranked.filter((a) => !isRelayedAddress(a))
  const kept = new Set<string>()
  for (const pick of [
    direct.find((a) => family(a) === 0),
    direct.find((a) => family(a) === 1),
    ranked.find(isRelayedAddress),
  ]) {
    if (pick !== undefined) kept.add(pick)
  }
  for (const a of ranked) {
    if (kept.size >= max) break
    kept.add(a)
  }
  return ranked.filter((a) => kept.has(a)).slice(0, max)
}

/**
 * `listen` without its IPv6 wildcard addresses when this host cannot open an IPv6 socket (a
 * kernel or namespace with IPv6 disabled), so the every-interface default still starts there.
 * Other addresses are left for libp2p to refuse with its own error.
 */
export async function listenable(listen: readonly string[]): Promise<string[]> {
  const isIp6Wildcard = (a: string): boolean => a.startsWith('/ip6/::/')
  if (!listen.some(isIp6Wildcard) || listen.every(isIp6Wildcard) || (await canListenIpv6()))
    return [...listen]
  return listen.filter((a) => !isIp6Wildcard(a))
}

function canListenIpv6(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ host: '::', port: 0, ipv6Only: true }, () => server.close(() => resolve(true)))
  })
}
