/**
 * Connections through a circuit relay (v2). A relay may limit each circuit's bytes (both ways
 * together) and duration; past either it resets the circuit, whatever is in flight. libp2p
 * counts what is left on each end (`Connection.limits`), and haul reads it so that a chunk is
 * never started on a circuit that cannot carry it whole (serve/serve-chunks.ts).
 */
import type { Connection } from '@libp2p/interface'
import { isRelayedAddress } from './addresses.ts'

/** A connection through a circuit relay (libp2p names it by the relay's circuit address). */
export function isRelayed(conn: Connection): boolean {
  return isRelayedAddress(conn.remoteAddr)
}

/** Bytes `conn`'s relay still lets it carry; undefined when its circuit has no data limit. */
export function circuitBytesLeft(conn: Connection): number | undefined {
  const bytes = conn.limits?.bytes
  return bytes === undefined ? undefined : Number(bytes)
}
