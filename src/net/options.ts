import { multiaddr } from '@multiformats/multiaddr'
import { ConfigInvalidError } from '../errors.ts'
import { KiB, MiB } from '../types.ts'
import {
  type AdmissionOptions,
  defaultAdmissionOptions,
  verifyAdmissionOptions,
} from './connection-admission.ts'
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

export interface NodeOptions {
  /**
   * Multiaddrs to listen on. Loopback only unless the caller asks for more.
   * @default ['/ip4/127.0.0.1/tcp/0']
   */
  listen?: string[]
  /**
   * Directory holding `identity.key`. When given the peer id survives restarts;
   * when absent every start gets a new ephemeral identity.
   * @default undefined
   */
  dataDir?: string
  /** @default see YamuxTuning */
  yamux?: YamuxTuning
  /**
   * How long a dial (TCP connect + Noise + Yamux negotiation) may take, in ms.
   * @default 10_000
   */
  connectTimeoutMs?: number
  /**
   * Connections the node keeps. A peer that completes its handshake while the node is full
   * takes the place of an idle connection (one without a negotiated stream; which one goes
   * first: src/net/connection-admission.ts), and is turned away only when none can go: every connection
   * carries a stream or is protected by `admission.newConnectionGraceMs`. Our own dials are
   * not refused: libp2p closes idle connections beyond `maxConnections + admission.maxPending`.
   * @default 256
   */
  maxConnections?: number
  /** Per-address and per-peer limits on inbound connections. @default see AdmissionOptions */
  admission?: AdmissionOptions
}

export const defaultYamuxTuning: Required<YamuxTuning> = {
  maxStreamWindowSize: 16 * MiB,
  keepAliveIntervalMs: 30_000,
}

export const defaultNodeOptions: Required<Omit<NodeOptions, 'dataDir'>> & { dataDir: string | undefined } = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  dataDir: undefined,
  yamux: defaultYamuxTuning,
  connectTimeoutMs: 10_000,
  maxConnections: 256,
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

/** Merges with defaults (never mutating `opts`) and validates; throws ConfigInvalidError. */
export function resolveNodeOptions(opts: NodeOptions = {}): ResolvedNodeOptions {
  const yamux: Required<YamuxTuning> = { ...defaultYamuxTuning, ...stripUndefined(opts.yamux ?? {}) }
  const admission: Required<AdmissionOptions> = {
    ...defaultAdmissionOptions,
    ...stripUndefined(opts.admission ?? {}),
  }
  const resolved: ResolvedNodeOptions = {
    ...defaultNodeOptions,
    ...stripUndefined(opts),
    listen: [...(opts.listen ?? defaultNodeOptions.listen)],
    yamux,
    admission,
  }
  verifyNodeOptions(resolved)
  return resolved
}

export function verifyNodeOptions(o: ResolvedNodeOptions): void {
  if (!Array.isArray(o.listen)) throw new ConfigInvalidError('listen must be an array of multiaddr strings')
  for (const addr of o.listen) {
    try {
      multiaddr(addr)
    } catch (err) {
      throw new ConfigInvalidError(`listen address ${JSON.stringify(addr)} is not a valid multiaddr`, {
        cause: err,
      })
    }
  }
  if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir === '')) {
    throw new ConfigInvalidError('dataDir must be a non-empty path')
  }
  if (!isPositiveInt(o.connectTimeoutMs))
    throw new ConfigInvalidError('connectTimeoutMs must be a positive integer')
  if (!isPositiveInt(o.maxConnections))
    throw new ConfigInvalidError('maxConnections must be a positive integer')
  verifyAdmissionOptions(o.admission)
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

export interface NetworkOptions extends NodeOptions {
  /**
   * Outbound streams open at once to one peer; more `openStream` calls wait.
   * @default 64
   */
  maxStreamsPerPeer?: number
  /**
   * Inbound streams one peer may have open on our handlers; more are reset.
   * @default 64
   */
  maxInboundStreamsPerPeer?: number
  /**
   * `openStream` calls allowed to wait for a slot per peer; more fail with TooManyRequestsError.
   * @default 256
   */
  maxQueuedOpensPerPeer?: number
  /**
   * Default idle timeout of every stream (see FrameStream), in ms.
   * @default 30_000
   */
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
  'maxStreamsPerPeer' | 'maxInboundStreamsPerPeer' | 'maxQueuedOpensPerPeer' | 'maxConnections' | 'admission'
>

export const defaultNetworkOptions: Required<NetworkOnlyOptions> = {
  maxStreamsPerPeer: 64,
  maxInboundStreamsPerPeer: 64,
  maxQueuedOpensPerPeer: 256,
  idleTimeoutMs: defaultWrapStreamOptions.idleTimeoutMs,
  maxBufferedIncoming: defaultWrapStreamOptions.maxBufferedIncoming,
}

export function verifyNetworkOptions(o: Required<NetworkOnlyOptions>): void {
  for (const k of [
    'maxStreamsPerPeer',
    'maxInboundStreamsPerPeer',
    'maxQueuedOpensPerPeer',
    'maxBufferedIncoming',
  ] as const) {
    const v = o[k]
    if (!Number.isSafeInteger(v) || v < (k === 'maxQueuedOpensPerPeer' ? 0 : 1)) {
      throw new ConfigInvalidError(
        `${k} must be a ${k === 'maxQueuedOpensPerPeer' ? 'non-negative' : 'positive'} integer`,
      )
    }
  }
  verifyIdleTimeout(o.idleTimeoutMs)
}

/** Splits network options from node options, merges defaults, validates both. */
export function resolveNetworkOptions(opts: NetworkOptions = {}): {
  net: Required<NetworkOnlyOptions>
  node: ResolvedNodeOptions
} {
  const {
    maxStreamsPerPeer,
    maxInboundStreamsPerPeer,
    maxQueuedOpensPerPeer,
    idleTimeoutMs,
    maxBufferedIncoming,
    ...node
  } = opts
  const net: Required<NetworkOnlyOptions> = {
    ...defaultNetworkOptions,
    ...stripUndefined({
      maxStreamsPerPeer,
      maxInboundStreamsPerPeer,
      maxQueuedOpensPerPeer,
      idleTimeoutMs,
      maxBufferedIncoming,
    }),
  }
  verifyNetworkOptions(net)
  return { net, node: resolveNodeOptions(node) }
}
