import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import type { ComponentLogger, Libp2p, Logger, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pInit } from 'libp2p'
import {
  ConfigInvalidError,
  InternalError,
  isHaulError,
  PeerUnreachableError,
  PermissionDeniedError,
  TooManyRequestsError,
} from '../errors.ts'
import { KiB } from '../types.ts'
import { listenable } from './addresses.ts'
import { ConnectionAdmission } from './connection-admission.ts'
import { ConnectionLiveness, PINGS_PER_DEAD_PERIOD } from './connection-liveness.ts'
import { DHT_PROTOCOL } from './defaults.ts'
import { loadOrCreateIdentity } from './identity.ts'
import {
  type NodeOptions,
  type ResolvedNodeOptions,
  resolveNodeOptions,
  YAMUX_INITIAL_WINDOW,
} from './options.ts'
import { noiseCrypto } from './tuning/noise-crypto.ts'
import { tunedNoise } from './tuning/noise-stream.ts'
import { SendLedgers } from './tuning/send-ledger.ts'
import { guardedMuxerFactory } from './tuning/yamux-guard.ts'

export type { NodeOptions, YamuxTuning } from './options.ts'

/**
 * A paused yamux stream stops granting window, so it can hold at most one full
 * window. libp2p resets a stream whose read buffer passes `maxReadBufferLength`
 * (4 MiB by default), which would kill every paused stream running with a larger
 * window: keep the limit one window plus slack for protocol-negotiation leftovers.
 */
const READ_BUFFER_SLACK = 64 * KiB

/**
 * Streams a peer may open on a new connection before our side of it is set up. libp2p's muxer
 * keeps such early streams until the connection's stream handler is attached and aborts the
 * whole connection past the limit (10 by default), which a peer opening a burst of streams the
 * moment its dial completes reached whenever this side was busy. haul's own dialer opens one
 * stream on a connection until one has been negotiated (stream-open.ts); this bound is for other
 * dialers, and equals the default per-peer inbound stream limit.
 */
export const MAX_EARLY_STREAMS = 64

/** A logger that logs nothing; `newScope` returns itself. */
const silent: Logger = Object.assign(() => {}, {
  error: () => {},
  trace: () => {},
  enabled: false,
  newScope: () => silent,
})

/**
 * libp2p makes loggers per stream, and each of its `debug` loggers asks whether stderr is a
 * terminal (two syscalls, plus a namespace match): ~1 % of each side's main thread at 10,000
 * small transfers. Unless `DEBUG` names something, every component gets the silent logger; with
 * `DEBUG` set, libp2p's own logger, as before.
 */
export function libp2pLogger(env: NodeJS.ProcessEnv = process.env): ComponentLogger | undefined {
  if (env.DEBUG !== undefined && env.DEBUG !== '') return undefined
  return { forComponent: () => silent }
}

/**
 * Creates and starts a libp2p node with what haul needs: TCP, Noise, Yamux (wrapped in a
 * frame-size guard, yamux-guard.ts), and the libp2p parts that reach peers behind NATs:
 * identify (each side learns the address the other sees), AutoNAT (peers confirm which of those
 * are reachable, so a confirmed public address joins the ticket), the circuit relay v2 client
 * (dial relayed addresses; reserve a slot on each relay in `relays`) and DCUtR (a relayed
 * connection tries a hole punch to a direct one). With `dht`, libp2p's Kademlia DHT too, in
 * server mode on haul's own protocol id (a haul DHT never mixes with IPFS's), keeping every
 * address a peer reports: haul fleets live on LANs, and tests on one machine. No UPnP, no mDNS,
 * no public bootstrap peers.
 */
export async function createNode(opts: NodeOptions = {}): Promise<Libp2p> {
  const o = resolveNodeOptions(opts)
  const privateKey = o.dataDir === undefined ? undefined : await loadOrCreateIdentity(o.dataDir)
  return await startLibp2p(o, privateKey)
}

/**
 * Benchmark-only hooks. haul itself always ships Noise and the spec's initial
 * window (see YamuxTuning for why a larger one breaks mixed peers).
 */
export interface NodeOverrides {
  connectionEncrypters?: Libp2pInit['connectionEncrypters']
  unsafeInitialStreamWindowSize?: number
}

/**
 * What the node is for. A `peer` (every engine) gets the NAT-traversal parts above; a `relay`
 * (`haul relay`, relay.ts) gets identify and the parts its caller adds in `services`.
 */
export interface NodeRole {
  kind: 'peer' | 'relay'
  /** libp2p services added to the role's own (the relay server). */
  services?: Libp2pInit['services']
  /** Inbound connections allowed past the gater's own checks (a relay's allow-list). */
  connectionGater?: Libp2pInit['connectionGater']
}

/**
 * `admission` counts connections for the node's gater; a caller that wants its figures passes
 * its own (made from the same options), otherwise one is made here.
 */
export async function startLibp2p(
  o: ResolvedNodeOptions,
  privateKey?: PrivateKey,
  overrides: NodeOverrides = {},
  ledgers?: SendLedgers,
  admission: ConnectionAdmission = new ConnectionAdmission(o.admission, o.maxConnections),
  role: NodeRole = { kind: 'peer' },
): Promise<Libp2p> {
  const y = o.yamux
  const initialWindow = overrides.unsafeInitialStreamWindowSize ?? YAMUX_INITIAL_WINDOW
  const maxWindow = Math.max(initialWindow, y.maxStreamWindowSize)
  const yamuxFactory = yamux({
    enableKeepAlive: true,
    keepAliveInterval: y.keepAliveIntervalMs,
    maxEarlyStreams: MAX_EARLY_STREAMS,
    streamOptions: {
      initialStreamWindowSize: initialWindow,
      maxStreamWindowSize: maxWindow,
      maxReadBufferLength: maxWindow + READ_BUFFER_SLACK,
    },
  })
  const logger = libp2pLogger()
  const a = o.admission
  const sends = ledgers ?? new SendLedgers()
  const peer = role.kind === 'peer'
  try {
    const node = await createLibp2p({
      // Started below, once the gater can see the node's connections.
      start: false,
      ...(privateKey === undefined ? {} : { privateKey }),
      ...(logger === undefined ? {} : { logger }),
      nodeInfo: { name: 'haul' },
      // A relay slot is reserved by listening on the relay's `/p2p-circuit` address.
      addresses: { listen: [...(await listenable(o.listen)), ...o.relays.map((r) => `${r}/p2p-circuit`)] },
      transports: [tcp(), ...(peer ? [circuitRelayTransport()] : [])],
      connectionEncrypters: overrides.connectionEncrypters ?? [tunedNoise({ crypto: noiseCrypto })],
      streamMuxers: [() => guardedMuxerFactory(yamuxFactory(), maxWindow, sends)],
      connectionGater: { ...admission.gater(), ...role.connectionGater },
      services: {
        identify: identify({ runOnLimitedConnection: true }),
        ...(peer ? { autoNAT: autoNAT(), dcutr: dcutr() } : {}),
        ...(peer && o.dht ? await dhtServices() : {}),
        ...role.services,
      },
      connectionManager: {
        // libp2p refuses sockets at accept once this many connections are open, before the
        // gater could make room: the gater enforces maxConnections itself (connection-admission.ts), and
        // libp2p's limit only catches our own dials beyond it.
        maxConnections: o.maxConnections + a.maxPending,
        // libp2p closes sockets at accept once this many are in their handshake, before the gater
        // sees them: the gater enforces maxPending itself, closing a socket of an address that
        // holds more for a newcomer (connection-admission.ts), so libp2p must let newcomers
        // through at maxPending. libp2p counts a socket until its upgrade settles, which for one
        // the gater refused or closed is before the next accept (measured: at each of 2,376
        // accepts under 270 closes/s, libp2p's count was the gater's plus the newcomer); and it
        // counts relayed sockets, which have no address for the gater to count. The headroom
        // is one address's share for those: in their handshake at once, at most maxPending
        // sockets from IP addresses and maxPending + maxPendingPerAddress in all.
        maxIncomingPendingConnections: a.maxPending + a.maxPendingPerAddress,
        inboundConnectionThreshold: a.maxNewPerAddressPerSecond,
        inboundUpgradeTimeout: a.upgradeTimeoutMs,
        dialTimeout: o.connectTimeoutMs,
        addressDialTimeout: o.connectTimeoutMs,
        maxPeerAddrsToDial: 16,
      },
      connectionMonitor: {
        // The pings keep a healthy idle connection from going quiet; whether a connection is
        // dead is decided by ConnectionLiveness, since a ping waits behind the data queued on a
        // slow link, and libp2p's cut on an unanswered ping then ends healthy transfers.
        pingInterval: Math.max(1, Math.floor(o.deadConnectionMs / PINGS_PER_DEAD_PERIOD)),
        abortConnectionOnPingFailure: false,
      },
    })
    admission.attach(node)
    const liveness = new ConnectionLiveness(sends, o.deadConnectionMs)
    node.addEventListener('stop', () => liveness.stop(), { once: true })
    try {
      await node.start()
    } catch (err) {
      liveness.stop()
      await Promise.resolve(node.stop()).catch(() => {})
      throw err
    }
    return node
  } catch (err) {
    if (isHaulError(err)) throw err
    const failed = listenFailures((err as Error).message)
    const relay = failed.filter((f) => f.relay).map((f) => `relay ${f.addr} (${f.why})`)
    const listen = failed.filter((f) => !f.relay).map((f) => `${f.addr} (${f.why})`)
    if (relay.length > 0) throw refusedByRelay(relay, failed, privateKey, err)
    if (listen.length > 0) {
      throw new ConfigInvalidError(
        `cannot listen on ${listen.join('; ')}: choose another listen address (tcp/0 picks a free port)`,
        { cause: err },
      )
    }
    throw new InternalError(`cannot start the libp2p node: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The error of relays that gave this node no slot, by the status they answered when all said the
 * same: RESERVATION_REFUSED is a relay at its `--max-reservations` (TOO_MANY_REQUESTS: try later
 * or another relay), PERMISSION_DENIED one whose `--allow` list leaves this peer out; anything
 * else (no answer, a wrong peer id) is PEER_UNREACHABLE.
 */
function refusedByRelay(
  named: readonly string[],
  failed: ReadonlyArray<{ why: string; relay: boolean }>,
  privateKey: PrivateKey | undefined,
  cause: unknown,
): Error {
  const why = failed.filter((f) => f.relay).map((f) => f.why)
  const all = (status: string): boolean => why.every((w) => w.includes(status))
  const relays = named.join('; ')
  if (all('RESERVATION_REFUSED')) {
    return new TooManyRequestsError(
      `no slot free on ${relays}: the relay holds as many senders as it allows (haul relay --max-reservations); try again later, or use another relay`,
      { cause },
    )
  }
  if (all('PERMISSION_DENIED')) {
    const self = privateKey === undefined ? 'this peer' : peerIdFromPrivateKey(privateKey).toString()
    return new PermissionDeniedError(
      `${relays} does not allow this peer (haul relay --allow): ask its operator to allow ${self}`,
      { cause },
    )
  }
  return new PeerUnreachableError(
    `cannot reserve a slot on ${relays}: check the address "haul relay" printed, that the relay runs, and that it allows this peer`,
    { cause },
  )
}

/**
 * Kademlia's k for haul's DHT: a lookup yields at most k providers, and an announcement is kept
 * by the k peers closest to the key. libp2p's 20 let 20 lying records (nodes that announce what
 * they do not serve) hide an honest seeder from every lookup; 32 is the default
 * `dht.maxProviders`, the providers one fetch tries.
 */
export const DHT_K = 32

/**
 * The DHT and the ping service it checks peers with, loaded only when asked for: an engine without
 * the DHT does not pay for importing it.
 */
async function dhtServices(): Promise<NonNullable<Libp2pInit['services']>> {
  const [{ kadDHT, passthroughMapper }, { ping }] = await Promise.all([
    import('@libp2p/kad-dht'),
    import('@libp2p/ping'),
  ])
  type Factory = NonNullable<Libp2pInit['services']>[string]
  return {
    ping: ping(),
    // libp2p hands a service every other service as components: the DHT finds `ping` there.
    dht: kadDHT({
      protocol: DHT_PROTOCOL,
      clientMode: false,
      kBucketSize: DHT_K,
      peerInfoMapper: passthroughMapper,
    }) as unknown as Factory,
  }
}

/**
 * The addresses libp2p could not listen on, each with the first line of its error (a port in
 * use, an address this machine does not have, a transport haul does not run, a relay refusing a
 * reservation), from the message of its listen failure, which lists them one per line as
 * `  <addr>: <Name>Error: <why>` followed by their stacks. A relay's address is given without its
 * trailing /p2p-circuit.
 */
function listenFailures(message: string): Array<{ addr: string; why: string; relay: boolean }> {
  const out: Array<{ addr: string; why: string; relay: boolean }> = []
  for (const m of message.matchAll(/^\s*(\/\S+?)(\/p2p-circuit)?: (?:\w*Error: )?(.*)$/gm)) {
    out.push({ addr: m[1]!, why: m[3]!, relay: m[2] !== undefined })
  }
  return out
}
