import { engineDefaults, resolveOption } from '../engine/config/resolve.ts'
import { ConfigInvalidError } from '../errors.ts'
import { KiB, MiB } from '../types.ts'
import { type AdmissionOptions, defaultAdmissionOptions } from './connection-admission.ts'
import { defaultWrapStreamOptions, verifyIdleTimeout } from './stream-io.ts'

/**
 * Yamux knobs that matter for bulk transfer, chosen by measurement
 * (`npx node bench/raw-stream.ts`; table in src/net/README.md).
 *
 * The initial stream window is NOT configurable: js-yamux 8 assumes both ends
 * start with the same window (it neither announces a larger one nor learns the
 * peer's), so a node configured above the spec's 256 KiB overruns any peer that
 * is not, and the receiver kills the whole connection (ReceiveWindowExceededError)
 * the first time it pauses a stream. Windows larger than 256 KiB are reached
 * only by growth, which yamux announces in window updates and is safe with any peer.
 */
export interface YamuxTuning {
  /**
   * Largest receive window a stream may grow to, in bytes. js-yamux doubles a
   * stream's window when a whole window was consumed within 4 RTTs, so only
   * streams that are read fast grow. Also bounds what one paused stream can
   * hold, and any data frame larger than this is a protocol violation (the
   * connection is cut before the frame is buffered). On loopback 256 KiB and
   * 1 MiB are ~30% slower than 4 MiB; 4, 8 and 16 MiB are equal within run-to-run
   * noise (±10%). 16 MiB because a window caps one stream at window / RTT on a
   * real link: 4 MiB at 50 ms is ~84 MB/s, 16 MiB ~335 MB/s.
   * @default 16 MiB
   */
  maxStreamWindowSize?: number
  /**
   * Yamux keep-alive ping interval in ms (also how the muxer learns the RTT).
   * @default 30_000
   */
  keepAliveIntervalMs?: number
}

/**
 * The node. Those that are engine options too (`listen`, `dataDir`, `maxConnections`,
 * `admission`; `connectTimeoutMs` and `deadConnectionMs` are the engine's `timeouts.connectMs`
 * and `timeouts.deadConnectionMs`) take the engine's
 * defaults and ranges: src/engine/config/table.ts.
 */
export interface NodeOptions {
  /** Multiaddrs to listen on. Every interface unless the caller says otherwise. */
  listen?: string[]
  /** Circuit relays to reserve a slot on, each naming its peer (`/p2p/<id>`). */
  relays?: string[]
  /**
   * Run libp2p's Kademlia DHT (src/routing/): server mode, haul's own protocol id, every address
   * a peer reports kept (LAN fleets and tests on one machine use private ones).
   */
  dht?: boolean
  /**
   * Directory holding `identity.key`. When given the peer id survives restarts;
   * when absent every start gets a new ephemeral identity.
   */
  dataDir?: string
  /** @default see YamuxTuning */
  yamux?: YamuxTuning
  /** How long a dial (TCP connect + Noise + Yamux negotiation) may take, in ms. */
  connectTimeoutMs?: number
  /**
   * A connection that reads nothing and gets none of its bytes into the network this long is
   * closed, in ms (src/net/connection-liveness.ts); pings go out three times as often.
   */
  deadConnectionMs?: number
  /**
   * Connections the node keeps. A peer that completes its handshake while the node is full
   * takes the place of an idle connection (one without a negotiated stream; which one goes
   * first: src/net/connection-admission.ts), and is turned away only when none can go: every connection
   * carries a stream or is protected by `admission.newConnectionGraceMs`. Our own dials are
   * not refused: libp2p closes idle connections beyond `maxConnections + admission.maxPending`.
   */
  maxConnections?: number
  /** Per-address and per-peer limits on inbound connections. */
  admission?: AdmissionOptions
}

export const defaultYamuxTuning: Required<YamuxTuning> = {
  maxStreamWindowSize: 16 * MiB,
  keepAliveIntervalMs: 30_000,
}

export const defaultNodeOptions: Required<Omit<NodeOptions, 'dataDir'>> & { dataDir: string | undefined } = {
  listen: engineDefaults.listen,
  relays: engineDefaults.relays,
  dht: engineDefaults.dht.enabled,
  dataDir: engineDefaults.dataDir,
  yamux: defaultYamuxTuning,
  connectTimeoutMs: engineDefaults.timeouts.connectMs,
  deadConnectionMs: engineDefaults.timeouts.deadConnectionMs,
  maxConnections: engineDefaults.network.maxConnections,
  admission: defaultAdmissionOptions,
}

/** Yamux spec: every stream starts with exactly 256 KiB of window. */
export const YAMUX_INITIAL_WINDOW = 256 * KiB
const MAX_UINT32 = 2 ** 32 - 1

export type ResolvedNodeOptions = typeof defaultNodeOptions & {
  yamux: Required<YamuxTuning>
  admission: Required<AdmissionOptions>
}

function isPositiveInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0
}

/**
 * Merges with defaults (never mutating `opts`) and validates; throws ConfigInvalidError. The
 * options an engine has too follow the engine's rules (src/engine/config/resolve.ts).
 */
export function resolveNodeOptions(opts: NodeOptions = {}): ResolvedNodeOptions {
  const resolved: ResolvedNodeOptions = {
    ...defaultNodeOptions,
    ...stripUndefined(opts),
    listen: resolveOption('listen', opts.listen),
    relays: resolveOption('relays', opts.relays),
    dataDir: resolveOption('dataDir', opts.dataDir),
    yamux: { ...defaultYamuxTuning, ...stripUndefined(opts.yamux ?? {}) },
    deadConnectionMs: resolveOption('timeouts.deadConnectionMs', opts.deadConnectionMs),
    maxConnections: resolveOption('network.maxConnections', opts.maxConnections),
    admission: resolveOption('network.admission', opts.admission),
  }
  verifyNodeOptions(resolved)
  return resolved
}

/** Checks what only the node has: the dial timeout and the yamux tuning. */
export function verifyNodeOptions(o: ResolvedNodeOptions): void {
  if (!isPositiveInt(o.connectTimeoutMs))
    throw new ConfigInvalidError('connectTimeoutMs must be a positive integer')
  const y = o.yamux
  if (
    !isPositiveInt(y.maxStreamWindowSize) ||
    y.maxStreamWindowSize < YAMUX_INITIAL_WINDOW ||
    y.maxStreamWindowSize > MAX_UINT32
  ) {
    throw new ConfigInvalidError(
      `yamux.maxStreamWindowSize must be between ${YAMUX_INITIAL_WINDOW} and ${MAX_UINT32}`,
    )
  }
  if (!isPositiveInt(y.keepAliveIntervalMs)) {
    throw new ConfigInvalidError('yamux.keepAliveIntervalMs must be a positive integer')
  }
}

/** `{ a: undefined }` must not override a default when spread. */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v
  }
  return out
}

/**
 * The network. The per-peer stream limits are engine options too (`network.*`), with the
 * engine's defaults and ranges; `idleTimeoutMs` defaults to the engine's `timeouts.idleMs`.
 */
export interface NetworkOptions extends NodeOptions {
  /** Outbound streams open at once to one peer; more `openStream` calls wait. */
  maxStreamsPerPeer?: number
  /** Inbound streams one peer may have open on our handlers; more are reset. */
  maxInboundStreamsPerPeer?: number
  /** Inbound streams all peers together may have open on our handlers; more are refused. */
  maxInboundStreams?: number
  /** `openStream` calls allowed to wait for a slot per peer; more fail with TooManyRequestsError. */
  maxQueuedOpensPerPeer?: number
  /** Default idle timeout of every stream (see FrameStream), in ms. */
  idleTimeoutMs?: number
  /**
   * Unread incoming bytes per stream before it is paused.
   * @default 1 MiB
   */
  maxBufferedIncoming?: number
}

export type NetworkOnlyOptions = Omit<NetworkOptions, keyof NodeOptions>

/** The network options an engine exposes (`EngineOptions.network`). */
export type EngineNetworkOptions = Pick<
  NetworkOptions,
  | 'maxStreamsPerPeer'
  | 'maxInboundStreamsPerPeer'
  | 'maxInboundStreams'
  | 'maxQueuedOpensPerPeer'
  | 'maxConnections'
  | 'admission'
>

export const defaultNetworkOptions: Required<NetworkOnlyOptions> = {
  maxStreamsPerPeer: engineDefaults.network.maxStreamsPerPeer,
  maxInboundStreamsPerPeer: engineDefaults.network.maxInboundStreamsPerPeer,
  maxInboundStreams: engineDefaults.network.maxInboundStreams,
  maxQueuedOpensPerPeer: engineDefaults.network.maxQueuedOpensPerPeer,
  idleTimeoutMs: defaultWrapStreamOptions.idleTimeoutMs,
  maxBufferedIncoming: defaultWrapStreamOptions.maxBufferedIncoming,
}

/** Splits network options from node options, merges defaults, validates both. */
export function resolveNetworkOptions(opts: NetworkOptions = {}): {
  net: Required<NetworkOnlyOptions>
  node: ResolvedNodeOptions
} {
  const {
    maxStreamsPerPeer,
    maxInboundStreamsPerPeer,
    maxInboundStreams,
    maxQueuedOpensPerPeer,
    idleTimeoutMs,
    maxBufferedIncoming,
    ...node
  } = opts
  const net: Required<NetworkOnlyOptions> = {
    maxStreamsPerPeer: resolveOption('network.maxStreamsPerPeer', maxStreamsPerPeer),
    maxInboundStreamsPerPeer: resolveOption('network.maxInboundStreamsPerPeer', maxInboundStreamsPerPeer),
    maxInboundStreams: resolveOption('network.maxInboundStreams', maxInboundStreams),
    maxQueuedOpensPerPeer: resolveOption('network.maxQueuedOpensPerPeer', maxQueuedOpensPerPeer),
    idleTimeoutMs: idleTimeoutMs ?? defaultNetworkOptions.idleTimeoutMs,
    maxBufferedIncoming: maxBufferedIncoming ?? defaultNetworkOptions.maxBufferedIncoming,
  }
  verifyIdleTimeout(net.idleTimeoutMs)
  if (!isPositiveInt(net.maxBufferedIncoming)) {
    throw new ConfigInvalidError('maxBufferedIncoming must be a positive integer')
  }
  return { net, node: resolveNodeOptions(node) }
}
