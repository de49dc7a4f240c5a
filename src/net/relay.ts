/**
 * A circuit relay v2 server (`haul relay`): peers that cannot reach each other directly (two
 * NATs, two networks without a route) both reach the relay; the sender reserves a slot, and the
 * receiver's connection to it is spliced by the relay (libp2p's `@libp2p/circuit-relay-v2`).
 * The relay sees only Noise ciphertext: it cannot read or change what it forwards.
 *
 * libp2p's own defaults suit signalling, not data (128 KiB and 2 minutes per circuit); a haul
 * relay forwards whole transfers, so its bounds are on what it holds instead:
 * - reservations (`maxReservations`): peers that may be reached through it at once;
 * - circuits (`maxCircuits`): relayed connections at once, each holding about one yamux window
 *   (`windowBytes`) per direction: a side that stops reading stops the other within a window
 *   (test/net/relay.test.ts pushes into a peer that never reads), so memory is about
 *   maxCircuits × 2 × windowBytes;
 * - optional per-circuit bytes and duration (`circuitBytes`, `circuitMs`): a circuit past them
 *   is cut, and haul's transfer retries on a new one;
 * - optional `allow`: only these peers may reserve a slot or be reached (any peer may dial in
 *   to reach one of them).
 */
import { circuitRelayServer, RELAY_V2_STOP_CODEC } from '@libp2p/circuit-relay-v2'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigInvalidError } from '../errors.ts'
import { defaultRelayOptions } from './defaults.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { startLibp2p } from './node.ts'
import { resolveNodeOptions, stripUndefined } from './options.ts'
import { startOnStablePort } from './stable-port.ts'

export interface RelayOptions {
  /** @default every interface */
  listen?: string[]
  /** Keeps the relay's peer id and port across restarts, so the address it printed stays valid. */
  dataDir?: string
  /** @default 128 */
  maxReservations?: number
  /** @default 32 */
  maxCircuits?: number
  /** Bytes one circuit may carry (both ways); 0: no limit. @default 0 */
  circuitBytes?: number
  /** How long one circuit may stay open, in ms; 0: no limit. @default 0 */
  circuitMs?: number
  /** Peer ids that may reserve a slot; empty: any peer. */
  allow?: string[]
  /** Largest yamux window per relayed stream, in bytes. @default 4 MiB */
  windowBytes?: number
}

/** How long a reservation lasts before the client refreshes it (libp2p's default, 2 h). */
const RESERVATION_TTL_MS = 2 * 60 * 60 * 1000

export interface Relay {
  readonly peerId: string
  /** Addresses to give senders (`--relay`), each ending in /p2p/<relay peer id>. */
  readonly addresses: string[]
  /** Peers holding a reservation now. */
  reservations(): number
  /** Relayed connections open now. */
  circuits(): number
  stop(): Promise<void>
}

export async function startRelay(opts: RelayOptions = {}): Promise<Relay> {
  const o = { ...defaultRelayOptions, ...stripUndefined(opts) }
  for (const k of ['maxReservations', 'maxCircuits'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1)
      throw new ConfigInvalidError(`relay ${k} must be a positive integer`)
  }
  for (const k of ['circuitBytes', 'circuitMs'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 0)
      throw new ConfigInvalidError(`relay ${k} must be 0 or a positive integer`)
  }
  const allowed = new Set((opts.allow ?? []).map((p) => parseAllowed(p).toString()))
  const denied = (peer: PeerId): boolean => allowed.size > 0 && !allowed.has(peer.toString())
  const node = resolveNodeOptions({
    ...(opts.listen === undefined ? {} : { listen: opts.listen }),
    ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
    yamux: { maxStreamWindowSize: o.windowBytes },
    // Each sender holding a slot keeps a connection, and each circuit's other side one more.
    maxConnections: o.maxReservations + 2 * o.maxCircuits,
  })
  const key = node.dataDir === undefined ? undefined : await loadOrCreateIdentity(node.dataDir)
  const limited = o.circuitBytes > 0 || o.circuitMs > 0
  const server = circuitRelayServer({
    maxInboundHopStreams: o.maxCircuits,
    maxOutboundStopStreams: o.maxCircuits,
    reservations: {
      maxReservations: o.maxReservations,
      reservationTtl: RESERVATION_TTL_MS,
      applyDefaultLimit: limited,
      // libp2p applies both or neither; an unset one is as good as none.
      defaultDataLimit: BigInt(o.circuitBytes > 0 ? o.circuitBytes : Number.MAX_SAFE_INTEGER),
      defaultDurationLimit: o.circuitMs > 0 ? o.circuitMs : 2 ** 31 - 1,
    },
  })
  let started: Libp2p | undefined
  const libp2p: Libp2p = await startOnStablePort(node, (n) =>
    startLibp2p(n, key, {}, undefined, undefined, {
      kind: 'relay',
      services: { relay: server },
      connectionGater: {
        denyInboundRelayReservation: (peer) => denied(peer),
        // libp2p's own stream limits count per connection; circuits are counted here, across all.
        denyOutboundRelayedConnection: (_from, to) =>
          denied(to) || (started !== undefined && circuitsOf(started) >= o.maxCircuits),
      },
    }),
  )
  started = libp2p
  const service = libp2p.services.relay as { reservations: { size: number } }
  return {
    peerId: libp2p.peerId.toString(),
    addresses: libp2p.getMultiaddrs().map((ma) => ma.toString()),
    reservations: () => service.reservations.size,
    circuits: () => circuitsOf(libp2p),
    stop: async () => {
      await libp2p.stop()
    },
  }
}

/** Open circuits: each is a stop stream this relay opened to the peer it reaches. */
function circuitsOf(node: Libp2p): number {
  let n = 0
  for (const c of node.getConnections()) {
    for (const s of c.streams) if (s.protocol === RELAY_V2_STOP_CODEC && s.direction === 'outbound') n++
  }
  return n
}

function parseAllowed(p: string): PeerId {
  try {
    return peerIdFromString(p)
  } catch (err) {
    throw new ConfigInvalidError(`relay allow: ${JSON.stringify(p)} is not a peer id`, { cause: err })
  }
}
