import { connect, type Socket } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Connection, Libp2p } from '@libp2p/interface'
import { type TCPSocketOptions, tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { libp2pLogger } from '../../../src/net/node.ts'

/** host and port of the first TCP address in a list of multiaddrs. */
export function tcpTarget(addrs: readonly string[]): { host: string; port: number } {
  for (const a of addrs) {
    const parts = multiaddr(a).getComponents()
    const ip = parts.find((c) => c.name === 'ip4')?.value
    const port = parts.find((c) => c.name === 'tcp')?.value
    if (ip !== undefined && port !== undefined) return { host: ip, port: Number(port) }
  }
  throw new Error(`no /ip4/…/tcp/… address in ${addrs.join(', ')}`)
}

export interface SilentSockets {
  /** Sockets connected now. */
  readonly open: number
  /** How long each socket the target closed had been connected, in ms. */
  readonly lifetimes: readonly number[]
  stop(): void
}

/**
 * Slowloris: `perAddress` raw TCP sockets from each local address to the target, that send
 * nothing (or drip a handshake's first bytes), each replaced `renewAfterMs` after the target
 * closes it. No key, no finished handshake.
 */
export function silentSockets(opts: {
  target: { host: string; port: number }
  localAddresses: readonly string[]
  perAddress: number
  renewAfterMs?: number
  /** Instead of silence, this is sent one byte every `dripEveryMs` (a handshake never finished). */
  drip?: Uint8Array
  dripEveryMs?: number
}): SilentSockets {
  const renewAfterMs = opts.renewAfterMs ?? 50
  const sockets = new Set<Socket>()
  const lifetimes: number[] = []
  let stopped = false
  let open = 0
  const start = (localAddress: string): void => {
    if (stopped) return
    const s = connect({ ...opts.target, localAddress })
    sockets.add(s)
    let connectedAt: number | undefined
    let drip: NodeJS.Timeout | undefined
    s.on('connect', () => {
      connectedAt = Date.now()
      open++
      const bytes = opts.drip
      if (bytes === undefined) return
      let at = 0
      drip = setInterval(() => {
        if (at < bytes.length) s.write(bytes.subarray(at, ++at))
      }, opts.dripEveryMs ?? 100)
    })
    s.on('error', () => {})
    s.on('close', () => {
      clearInterval(drip)
      sockets.delete(s)
      if (connectedAt !== undefined) {
        open--
        if (!stopped) lifetimes.push(Date.now() - connectedAt)
      }
      if (!stopped) setTimeout(() => start(localAddress), renewAfterMs).unref()
    })
  }
  for (const a of opts.localAddresses) for (let i = 0; i < opts.perAddress; i++) start(a)
  return {
    get open() {
      return open
    },
    lifetimes,
    stop() {
      stopped = true
      for (const s of sockets) s.destroy()
    },
  }
}

/**
 * A stock libp2p peer (its own key, Noise, yamux, no services) whose dials leave from
 * `localAddress`, so one machine can stand for many hosts (Linux routes 127.0.0.0/8 to lo).
 */
export async function noisePeer(localAddress: string): Promise<Libp2p> {
  const logger = libp2pLogger()
  return await createLibp2p({
    ...(logger === undefined ? {} : { logger }),
    addresses: { listen: [] },
    // `dialOpts` is spread into net.connect's options, which take a local address.
    transports: [tcp({ dialOpts: { localAddress } as TCPSocketOptions })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
  })
}

/** Dials `addr` for a new connection (even with one open already); undefined when refused. */
export async function dialNew(peer: Libp2p, addr: string): Promise<Connection | undefined> {
  try {
    return await peer.dial(multiaddr(addr), { force: true, signal: AbortSignal.timeout(5_000) })
  } catch {
    return undefined
  }
}

export interface IdleCrowd {
  readonly peers: readonly Libp2p[]
  /** Connections the crowd holds now. */
  openConnections(): number
  stop(): Promise<void>
}

/**
 * `count` peers spread over `localAddresses`, each holding one idle connection (no stream) to
 * `addr` and dialing again `renewAfterMs` after it is closed, so the target stays full.
 */
export async function idleCrowd(opts: {
  addr: string
  localAddresses: readonly string[]
  count: number
  renewAfterMs?: number
}): Promise<IdleCrowd> {
  const renewAfterMs = opts.renewAfterMs ?? 200
  let stopped = false
  const peers = await Promise.all(
    Array.from({ length: opts.count }, (_, i) =>
      noisePeer(opts.localAddresses[i % opts.localAddresses.length]!),
    ),
  )
  const hold = async (peer: Libp2p): Promise<void> => {
    if (stopped) return
    const conn = await dialNew(peer, opts.addr)
    if (stopped) return
    if (conn === undefined || conn.status !== 'open') {
      setTimeout(() => void hold(peer), renewAfterMs).unref()
      return
    }
    conn.addEventListener('close', () => setTimeout(() => void hold(peer), renewAfterMs).unref(), {
      once: true,
    })
  }
  // One at a time at first, so the target is filled in a known order.
  for (const p of peers) await hold(p)
  return {
    peers,
    openConnections: () =>
      peers.reduce((n, p) => n + p.getConnections().filter((c) => c.status === 'open').length, 0),
    async stop() {
      stopped = true
      await Promise.all(peers.map((p) => p.stop()))
    },
  }
}
