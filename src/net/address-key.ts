/**
 * What counts as one remote address for the per-address limits of connection-admission.ts, read
 * from a connection's multiaddr: an IPv4 address, or the /64 prefix of an IPv6 address (one host
 * usually holds a whole /64). Relayed connections have none.
 */
import type { Multiaddr } from '@multiformats/multiaddr'
import { isRelayedAddress } from './addresses.ts'

/**
 * The remote end's address for per-address limits: an IPv4 address, or an IPv6 /64 prefix
 * (an IPv4-mapped IPv6 address counts as its IPv4 address). Undefined for non-IP transports.
 */
export function addressKey(ma: Multiaddr): string | undefined {
  // A relayed connection's address is the relay's: every peer behind one relay would share it.
  // Relayed peers are bounded by the relay's limits and by our per-peer ones.
  if (isRelayedAddress(ma)) return undefined
  for (const c of ma.getComponents()) {
    if (c.name === 'ip4' && c.value !== undefined) return c.value
    if (c.name === 'ip6' && c.value !== undefined) return ip6Prefix(c.value)
  }
  return undefined
}

function ip6Prefix(ip: string): string {
  const g = ip6Groups(ip.toLowerCase().split('%')[0]!)
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join('.')
  }
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, a dotted IPv4 tail as two groups). */
function ip6Groups(addr: string): number[] {
  const parse = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').flatMap((x) => {
          if (!x.includes('.')) return [Number.parseInt(x, 16) || 0]
          const [a = 0, b = 0, c = 0, d = 0] = x.split('.').map(Number)
          return [(a << 8) | b, (c << 8) | d]
        })
  const [head = '', tail] = addr.split('::')
  const h = parse(head)
  if (tail === undefined) return h
  const t = parse(tail)
  return [...h, ...new Array<number>(Math.max(0, 8 - h.length - t.length)).fill(0), ...t]
}
