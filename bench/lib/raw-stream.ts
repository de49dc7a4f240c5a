import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { YamuxTuning } from '../../src/net/options.ts'

/** Which stack carries the bytes. `tcp` is bare node:net, the ceiling for everything else. */
export type RawStack = 'noise' | 'plaintext' | 'tcp'

export interface RawStreamOptions {
  /** MiB sent through one stream. */
  mib: number
  /** @default 'noise' (what haul ships) */
  stack?: RawStack
  /** Yamux tuning for both peers. @default haul's defaults */
  yamux?: YamuxTuning
  /**
   * Initial stream window for both peers. Anything but 256 KiB is unsafe with
   * mixed peers (see YamuxTuning); measured only to show what it would buy.
   * @default 256 KiB
   */
  unsafeInitialWindow?: number
  /** `frame`: haul's FrameStream (backpressure-honouring write); `raw`: libp2p's send()/onDrain(). @default 'frame' */
  io?: 'frame' | 'raw'
  /** Size of each write, bytes. @default 1 MiB */
  partBytes?: number
  /** FrameStream write slice (see WrapStreamOptions.writeSliceBytes). @default haul's default */
  sliceBytes?: number
  /** Kill both peers if one run takes longer than this. @default 30 s + 1 s per 20 MiB */
  timeoutMs?: number
}

export interface RawStreamResult {
  /** Payload MB/s (10^6 bytes) seen by the receiver, from stream open to last byte. */
  mbps: number
  seconds: number
  bytes: number
  senderPeakRss: number
  receiverPeakRss: number
  /** RSS of each process once its node was up, before any transfer (compare peak against this). */
  senderIdleRss: number
  receiverIdleRss: number
  /** The receiving stream's yamux window at the end (diagnostic: shows whether it grew), 0 for tcp. */
  finalWindow: number
  /** CPU seconds (user + system) each process spent over its whole life, setup included. */
  senderCpuSeconds: number
  receiverCpuSeconds: number
}

/** @internal wire between this module and bench/raw-stream-peer.ts */
export interface PeerConfig {
  role: 'sender' | 'receiver'
  stack: RawStack
  io: 'frame' | 'raw'
  yamux: YamuxTuning
  unsafeInitialWindow?: number
  partBytes: number
  sliceBytes?: number
  bytes: number
}
export type PeerMessage =
  | { type: 'ready'; addrs: string[]; idleRss: number }
  | { type: 'done'; bytes: number; seconds: number; finalWindow: number; idleRss: number }
  | { type: 'rss'; maxRssBytes: number; cpuSeconds: number }
  | { type: 'error'; message: string }
export type ParentMessage = { type: 'go'; addrs: string[] } | { type: 'exit' }

const PEER = fileURLToPath(new URL('../raw-stream-peer.ts', import.meta.url))

/**
 * Measures one large transfer between two separate Node processes on loopback:
 * the receiver dials, the sender writes `mib` MiB of random data on one stream.
 * This is reference "(a)" for bench/transfer.ts.
 */
export async function measureRawStream(opts: RawStreamOptions): Promise<RawStreamResult> {
  const bytes = Math.round(opts.mib * 1024 * 1024)
  const base = {
    stack: opts.stack ?? 'noise',
    io: opts.io ?? 'frame',
    yamux: opts.yamux ?? {},
    ...(opts.unsafeInitialWindow === undefined ? {} : { unsafeInitialWindow: opts.unsafeInitialWindow }),
    partBytes: opts.partBytes ?? 1024 * 1024,
    ...(opts.sliceBytes === undefined ? {} : { sliceBytes: opts.sliceBytes }),
    bytes,
  } as const
  const timeoutMs = opts.timeoutMs ?? 30_000 + (opts.mib / 20) * 1000
  const sender = spawnPeer({ ...base, role: 'sender' })
  const receiver = spawnPeer({ ...base, role: 'receiver' })
  const timer = setTimeout(() => {
    sender.fail(new Error(`raw-stream run timed out after ${timeoutMs} ms`))
    receiver.fail(new Error(`raw-stream run timed out after ${timeoutMs} ms`))
  }, timeoutMs)
  let ok = false
  try {
    const ready = await sender.next('ready')
    receiver.post({ type: 'go', addrs: ready.addrs })
    const done = await receiver.next('done')
    if (done.bytes !== bytes) throw new Error(`receiver got ${done.bytes} bytes, expected ${bytes}`)
    receiver.post({ type: 'exit' })
    sender.post({ type: 'exit' })
    const [rr, sr] = await Promise.all([receiver.next('rss'), sender.next('rss')])
    ok = true
    return {
      mbps: bytes / 1e6 / done.seconds,
      seconds: done.seconds,
      bytes,
      finalWindow: done.finalWindow,
      senderPeakRss: sr.maxRssBytes,
      receiverPeakRss: rr.maxRssBytes,
      senderIdleRss: ready.idleRss,
      receiverIdleRss: done.idleRss,
      senderCpuSeconds: sr.cpuSeconds,
      receiverCpuSeconds: rr.cpuSeconds,
    }
  } finally {
    clearTimeout(timer)
    if (!ok) for (const p of [sender, receiver]) p.fail(new Error('run failed'))
    await Promise.all([sender.reap(), receiver.reap()])
  }
}

interface Peer {
  post(m: ParentMessage): void
  next<T extends PeerMessage['type']>(type: T): Promise<Extract<PeerMessage, { type: T }>>
  fail(err: Error): void
  reap(): Promise<void>
}

function spawnPeer(cfg: PeerConfig): Peer {
  const child: ChildProcess = fork(PEER, [], {
    env: { ...process.env, HAUL_BENCH_PEER: JSON.stringify(cfg) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const inbox: PeerMessage[] = []
  let waiter: { type: string; resolve: (m: PeerMessage) => void; reject: (e: Error) => void } | undefined
  let failure: Error | undefined
  const deliver = (): void => {
    if (waiter === undefined) return
    if (failure !== undefined) {
      waiter.reject(failure)
      waiter = undefined
      return
    }
    const i = inbox.findIndex((m) => m.type === waiter!.type || m.type === 'error')
    if (i === -1) return
    const [m] = inbox.splice(i, 1)
    const w = waiter
    waiter = undefined
    if (m!.type === 'error') w.reject(new Error(`${cfg.role} failed: ${m!.message}`))
    else w.resolve(m!)
  }
  const fail = (err: Error): void => {
    failure ??= err
    child.kill('SIGKILL')
    deliver()
  }
  child.on('message', (m: PeerMessage) => {
    inbox.push(m)
    deliver()
  })
  child.on('exit', (code, sig) => {
    if (code !== 0 || sig !== null) fail(new Error(`${cfg.role} exited with ${sig ?? code}`))
    else if (waiter !== undefined) fail(new Error(`${cfg.role} exited before sending ${waiter.type}`))
  })
  child.on('error', fail)
  return {
    post: (m) => {
      if (child.connected) child.send(m)
    },
    next: (type) =>
      new Promise((resolve, reject) => {
        waiter = { type, resolve: resolve as (m: PeerMessage) => void, reject }
        deliver()
      }),
    fail,
    reap: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((r) => child.once('exit', () => r()))
      const grace = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(grace)
    },
  }
}
