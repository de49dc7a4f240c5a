import { once } from 'node:events'
import { createServer, type Server, Socket } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it } from 'vitest'
import { wrapStream } from '../../../src/net/stream-io.ts'
import { isOwnCiphertext, noiseCrypto } from '../../../src/net/tuning/noise-crypto.ts'
import {
  corkSends,
  isTuned,
  NoiseFraming,
  releaseWhenWritten,
  tunedNoise,
  wireOf,
} from '../../../src/net/tuning/noise-stream.ts'
import { echoStream, random, readAll, sha256 } from '../helpers.ts'

const ECHO = '/haul-test/echo/1.0.0'
const nodes: Libp2p[] = []
const servers: Server[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
  for (const s of servers.splice(0)) s.close()
})

type Encrypter = ReturnType<typeof noise>

/** A libp2p node with the given Noise; `seen` gets every connection it secured (raw and encrypted). */
async function node(encrypter: Encrypter, seen?: unknown[]): Promise<Libp2p> {
  const watched: Encrypter = (components) => {
    const inner = encrypter(components)
    const outer = Object.create(inner)
    outer.secureOutbound = async (conn: never, opts: never) => {
      const secured = await inner.secureOutbound(conn, opts)
      seen?.push(conn, secured.connection)
      return secured
    }
    outer.secureInbound = async (conn: never, opts: never) => {
      const secured = await inner.secureInbound(conn, opts)
      seen?.push(conn, secured.connection)
      return secured
    }
    return outer
  }
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [watched],
    streamMuxers: [yamux()],
  })
  nodes.push(n)
  await n.handle(ECHO, echoStream)
  return n
}

/** Sends `bytes` to `to`'s echo handler and returns what came back. */
async function echo(from: Libp2p, to: Libp2p, bytes: Uint8Array): Promise<Buffer> {
  const s = wrapStream(await from.dialProtocol(to.getMultiaddrs()[0]!, ECHO))
  const back = readAll(s)
  for (let off = 0; off < bytes.length; off += 1024 * 1024)
    await s.write([bytes.subarray(off, off + 1024 * 1024)])
  await s.closeWrite()
  return await back
}

describe('tunedNoise', () => {
  it.each([
    ['dials', true],
    ['is dialed by', false],
  ])(
    'a tuned node that %s a stock node: both ways byte for byte, and the tuning found its shape',
    async (_, tunedDials) => {
      const seen: unknown[] = []
      const tuned = await node(tunedNoise({ crypto: noiseCrypto }), seen)
      const stock = await node(noise())
      // 3 MiB + 1: Noise messages split across TCP reads, and a short last one.
      const bytes = random(3 * 1024 * 1024 + 1)
      const back = tunedDials ? await echo(tuned, stock, bytes) : await echo(stock, tuned, bytes)
      expect(back.length).toBe(bytes.length)
      expect(sha256(back)).toBe(sha256(bytes))
      // The raw TCP connection (corked sends) and the Noise stream (decrypt) of the one connection.
      expect(seen).toHaveLength(2)
      expect(seen.every(isTuned)).toBe(true)
      // The secured stream knows its TCP connection: every byte was read, and taken by the kernel.
      const wire = seen.map(wireOf).find((w) => w !== undefined)
      expect(wire?.bytesRead).toBeGreaterThan(bytes.length)
      expect(wire?.unsent).toBe(0)
    },
  )

  it('two tuned nodes, with the small-message cipher too (messages under 1,200 bytes)', async () => {
    const a = await node(tunedNoise({ crypto: noiseCrypto }))
    const b = await node(tunedNoise({ crypto: noiseCrypto }))
    for (const size of [1, 700, 1199, 1200, 65_519, 65_520, 200_000]) {
      const bytes = random(size)
      expect(sha256(await echo(a, b, bytes))).toBe(sha256(bytes))
    }
  })

  it('frees every piece of ciphertext once its socket has written it, not at a later GC', async () => {
    const seen: unknown[] = []
    const a = await node(tunedNoise({ crypto: noiseCrypto }), seen)
    const b = await node(tunedNoise({ crypto: noiseCrypto }))
    // Every piece either side's TCP connection hands its socket, with its length then.
    const written: { piece: Uint8Array; length: number }[] = []
    const record = (socket: Socket) => {
      const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        if (chunk instanceof Uint8Array) written.push({ piece: chunk, length: chunk.byteLength })
        return write(chunk, ...rest)
      }) as Socket['write']
    }
    const open = () => a.dialProtocol(b.getMultiaddrs()[0]!, ECHO)
    // The connection is secured (and tuned) by the first dial; the bytes go on a second stream.
    await (await open()).close()
    const raw = seen.find(
      (c): c is { socket: Socket } => (c as { socket?: unknown }).socket instanceof Socket,
    )
    record(raw!.socket)
    const bytes = random(3 * 1024 * 1024)
    expect(sha256(await echo(a, b, bytes))).toBe(sha256(bytes))
    // 3 MiB is 48 full Noise messages out of a's socket: each one's ciphertext is now 0 bytes (freed).
    const messages = written.filter((w) => w.length >= 60_000)
    expect(messages.length).toBeGreaterThanOrEqual(48)
    expect(messages.filter((w) => w.piece.byteLength > 0)).toEqual([])
  })
})

describe('releaseWhenWritten', () => {
  const k = new Uint8Array(32).fill(7)
  /** One Noise message's ciphertext pieces as noiseCrypto makes them (the ciphertext, then the tag). */
  const ciphertext = (size: number): Uint8Array[] => {
    const out = noiseCrypto.chaCha20Poly1305Encrypt(random(size), new Uint8Array(12), new Uint8Array(0), k)
    return out instanceof Uint8Array ? [out] : [...(out as Iterable<Uint8Array>)]
  }

  it('frees the ciphertext a socket wrote, after the kernel took it, and leaves any other buffer alone', async () => {
    const { socket, received } = await socketPair()
    releaseWhenWritten(socket)
    const pieces = [...ciphertext(65_519), ...ciphertext(5000)]
    expect(pieces.every(isOwnCiphertext)).toBe(true)
    const copies = pieces.map((p) => Buffer.from(p))
    const other = random(65_519)
    for (const p of pieces) socket.write(p)
    socket.write(other)
    socket.end()
    // The peer got every byte as it was when written, and the memory is gone.
    expect((await received).equals(Buffer.concat([...copies, other]))).toBe(true)
    expect(pieces.map((p) => p.byteLength)).toEqual(pieces.map(() => 0))
    expect(other.byteLength).toBe(65_519)
  })

  it('leaves ciphertext whose write failed to the GC', async () => {
    const { socket } = await socketPair()
    releaseWhenWritten(socket)
    socket.on('error', () => {})
    socket.destroy()
    const [piece] = ciphertext(65_519)
    socket.write(piece!)
    // Callbacks run in order: once this one has, the piece's failed write has been seen.
    await new Promise((r) => socket.write(Buffer.alloc(1), r))
    expect(piece!.byteLength).toBe(65_519)
    expect(isOwnCiphertext(piece!)).toBe(true)
  })
})

/** A connected loopback socket pair: ours, and a promise of every byte the other end reads. */
async function socketPair(): Promise<{ socket: Socket; received: Promise<Buffer> }> {
  let resolveReceived!: (b: Buffer) => void
  const received = new Promise<Buffer>((r) => (resolveReceived = r))
  const server = createServer((peer) => {
    const parts: Buffer[] = []
    peer.on('data', (d: Buffer) => parts.push(d))
    peer.on('end', () => resolveReceived(Buffer.concat(parts)))
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const socket = new Socket()
  socket.setNoDelay(true)
  socket.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  return { socket, received }
}

describe('corkSends', () => {
  /** The socket's writes, counted at Node's stream layer: `_write` per buffer, `_writev` per batch. */
  function countWrites(socket: Socket): { write: number; writev: number } {
    const n = { write: 0, writev: 0 }
    const s = socket as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void }
    const write = s._write.bind(socket)
    const writev = s._writev.bind(socket)
    s._write = (...a) => {
      n.write++
      write(...a)
    }
    s._writev = (...a) => {
      n.writev++
      writev(...a)
    }
    return n
  }

  /** What @libp2p/tcp does with one send: a socket.write per piece. */
  function connection(socket: Socket) {
    return {
      socket,
      sendData(data: Iterable<Uint8Array>) {
        for (const b of data) socket.write(b)
      },
    }
  }

  const message = () => [new Uint8Array([0xff, 0xef]), random(65_519), random(16)]

  it('hands the socket one writev per send instead of a write per piece', async () => {
    const { socket, received } = await socketPair()
    const conn = connection(socket)
    corkSends(conn)
    const n = countWrites(socket)
    const sent = [message(), message()]
    for (const m of sent) conn.sendData(m)
    expect(n).toEqual({ write: 0, writev: 2 })
    socket.end()
    expect((await received).equals(Buffer.concat(sent.flat()))).toBe(true)
  })

  it('(control) without it, the same sends reach the socket as one write per piece', async () => {
    const { socket, received } = await socketPair()
    const conn = connection(socket)
    const n = countWrites(socket)
    const sent = [message(), message()]
    for (const m of sent) conn.sendData(m)
    expect(n.write + n.writev).toBeGreaterThan(2)
    socket.end()
    expect((await received).equals(Buffer.concat(sent.flat()))).toBe(true)
  })
})

describe('NoiseFraming', () => {
  /** A 2-byte big-endian length, then the bytes. */
  const framed = (body: Uint8Array) =>
    Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body])
  const bodies = [random(1), random(0), random(300), random(65_535), random(2)]
  const wire = Buffer.concat(bodies.map(framed))
  const expected = bodies.filter((b) => b.length > 0).map((b) => sha256(b))

  it('yields every non-empty message however the bytes are split, starting with what it was handed', () => {
    for (const step of [1, 2, 3, 1000, 65_537, wire.length]) {
      // The first 5 bytes were buffered by the decoder it replaces.
      const f = new NoiseFraming(new Uint8ArrayList(wire.subarray(0, 5)))
      const got: string[] = []
      for (let i = 5; i < wire.length; i += step) {
        for (const m of f.decode(wire.subarray(i, i + step))) got.push(sha256(m.subarray()))
      }
      expect(got).toEqual(expected)
      expect(f.buffer.byteLength).toBe(0)
    }
  })

  it('keeps a partial message for the next read, and refuses to buffer past 16 MiB', () => {
    const f = new NoiseFraming()
    expect([...f.decode(wire.subarray(0, 2))]).toHaveLength(0) // a length, no body yet
    expect([...f.decode(wire.subarray(2, 3))]).toHaveLength(1)
    // The empty message is skipped; 2 + 3 bytes of the 300-byte one wait.
    expect([...f.decode(wire.subarray(3, 10))]).toHaveLength(0)
    expect(f.buffer.byteLength).toBe(5)
    const big = new NoiseFraming()
    expect(() => [...big.decode(new Uint8Array(16 * 1024 * 1024 + 1))]).toThrow(/limit exceeded/)
  })
})
