/**
 * Network defaults that the option table and help texts read. Kept free of libp2p imports, so a
 * command that never opens the network (`haul index`, `--help`) does not load it.
 */
import { MiB } from '../types.ts'

/** The listen addresses of a node told nothing: every interface, both families. */
export const ALL_INTERFACES = ['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0'] as const

/** `haul relay`'s bounds (src/net/relay.ts explains each). */
export const defaultRelayOptions = {
  maxReservations: 128,
  maxCircuits: 32,
  circuitBytes: 0,
  circuitMs: 0,
  windowBytes: 4 * MiB,
} as const

/** The Kademlia protocol of haul's DHT: its own, so haul's provider records never mix with IPFS's. */
export const DHT_PROTOCOL = '/haul/kad/1.0.0'
