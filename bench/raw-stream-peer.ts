/**
 * One side of the raw-stream benchmark, run as a child process by
 * bench/lib/raw-stream.ts (never on its own). The sender listens and, for each
 * stream opened to it, writes `bytes` of random data; the receiver dials, reads
 * everything and reports the time. Talks to the parent over the fork IPC channel.
 */
import { randomFillSync } from 'node:crypto'
import { createServer, connect as tcpConnect } from 'node:net'
import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { startLibp2p } from '../src/net/node.ts'
import { resolveNodeOptions } from '../src/net/options.ts'
import { wrapStream } from '../src/net/stream-io.ts'
import { insecurePassthrough } from './lib/plaintext.ts'
import type { ParentMessage, PeerConfig, PeerMessage } from './lib/raw-stream.ts'

const PROTOCOL = '/haul-bench/raw/1'
const POOL_BYTES = 8 * 1024 * 1024

const cfg = JSON.parse(process.env.HAUL_BENCH_PEER ?? '{}') as PeerConfig
const send = (m: PeerMessage): void => {
  process.send?.(m)
}
const pool = randomFillSync(new Uint8Array(POOL_BYTES))

/** Cycles through the random pool; parts are views, never copies. */
function* parts(total: number, partBytes: number): Generator<Uint8Array> {
  let off = 0
  for (let left = total; left > 0; ) {
    const n = Math.min(partBytes, left)
    if (off + n > POOL_BYTES) off = 0
    yield pool.subarray(off, off + n)
    off += n
    left -= n
  }
}

async function writeAll(stream: Stream): Promise<void> {
  if (cfg.io === 'frame') {
    const fs = wrapStream(stream, {
      idleTimeoutMs: 120_000,
      ...(cfg.sliceBytes ? { writeSliceBytes: cfg.sliceBytes } : {}),
    })
    for (const p of parts(cfg.bytes, cfg.partBytes)) await fs.write([p])
    await fs.close()
  } else {
    // What libp2p's own examples do: send, and wait for drain when told to.
    for (const p of parts(cfg.bytes, cfg.partBytes)) if (!stream.send(p)) await stream.onDrain()
    await stream.close()
  }
}

/** Private yamux field, read only as a diagnostic of window growth. */
const windowOf = (stream: Stream): number => (stream as unknown as { recvWindow?: number }).recvWindow ?? 0

async function readAll(stream: Stream): Promise<number> {
  let n = 0
  if (cfg.io === 'frame') {
    const fs = wrapStream(stream, { idleTimeoutMs: 120_000 })
    await fs.closeWrite()
    for await (const d of fs.incoming) n += d.byteLength
    await fs.close()
  } else {
    await stream.close()
    for await (const d of stream) n += d.byteLength
  }
  return n
}

async function node(): Promise<Libp2p> {
  const o = resolveNodeOptions({ yamux: cfg.yamux })
  return await startLibp2p(o, undefined, {
    ...(cfg.stack === 'plaintext' ? { connectionEncrypters: [insecurePassthrough()] } : {}),
    ...(cfg.unsafeInitialWindow === undefined
      ? {}
      : { unsafeInitialStreamWindowSize: cfg.unsafeInitialWindow }),
  })
}

async function runSender(): Promise<() => Promise<void>> {
  if (cfg.stack === 'tcp') {
    const server = createServer((sock) => {
      sock.on('data', () => {})
      void (async () => {
        for (const p of parts(cfg.bytes, cfg.partBytes)) {
          if (!sock.write(p)) await new Promise((r) => sock.once('drain', r))
        }
        sock.end()
      })()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    send({ type: 'ready', addrs: [`/ip4/127.0.0.1/tcp/${port}`], idleRss: process.memoryUsage.rss() })
    return async () => {
      server.close()
    }
  }
  const n = await node()
  await n.handle(PROTOCOL, (stream) => {
    writeAll(stream).catch((err) => {
      console.error('sender failed:', err)
      stream.abort(err)
    })
  })
  send({ type: 'ready', addrs: n.getMultiaddrs().map(String), idleRss: process.memoryUsage.rss() })
  return async () => {
    await n.stop()
  }
}

interface ReceiverResult {
  idleRss: number
  bytes: number
  seconds: number
  finalWindow: number
  stop: () => Promise<void>
}

async function runReceiver(addrs: string[]): Promise<ReceiverResult> {
  if (cfg.stack === 'tcp') {
    const parts = multiaddr(addrs[0]!).getComponents()
    const host = parts.find((c) => c.name === 'ip4')?.value ?? '127.0.0.1'
    const port = Number(parts.find((c) => c.name === 'tcp')?.value)
    const idleRss = process.memoryUsage.rss()
    const sock = tcpConnect({ host, port })
    await new Promise<void>((r) => sock.once('connect', () => r()))
    const t0 = performance.now()
    let bytes = 0
    sock.on('data', (d: Buffer) => {
      bytes += d.byteLength
    })
    await new Promise<void>((r) => sock.once('end', () => r()))
    const seconds = (performance.now() - t0) / 1000
    sock.destroy()
    return { idleRss, bytes, seconds, finalWindow: 0, stop: async () => {} }
  }
  const n = await node()
  const idleRss = process.memoryUsage.rss()
  const stream = await n.dialProtocol(
    addrs.map((a) => multiaddr(a)),
    PROTOCOL,
  )
  const t0 = performance.now()
  const bytes = await readAll(stream)
  const seconds = (performance.now() - t0) / 1000
  return {
    idleRss,
    bytes,
    seconds,
    finalWindow: windowOf(stream),
    stop: async () => {
      await n.stop()
    },
  }
}

let stop: () => Promise<void> = async () => {}
process.on('message', (m: ParentMessage) => {
  void (async () => {
    try {
      if (m.type === 'go') {
        const r = await runReceiver(m.addrs)
        stop = r.stop
        send({
          type: 'done',
          bytes: r.bytes,
          seconds: r.seconds,
          finalWindow: r.finalWindow,
          idleRss: r.idleRss,
        })
      } else if (m.type === 'exit') {
        await stop()
        const ru = process.resourceUsage()
        send({
          type: 'rss',
          maxRssBytes: ru.maxRSS * 1024,
          cpuSeconds: (ru.userCPUTime + ru.systemCPUTime) / 1e6,
        })
        process.disconnect()
      }
    } catch (err) {
      send({ type: 'error', message: String((err as Error)?.stack ?? err) })
    }
  })()
})

if (cfg.role === 'sender') {
  runSender()
    .then((s) => {
      stop = s
    })
    .catch((err) => send({ type: 'error', message: String((err as Error)?.stack ?? err) }))
}
