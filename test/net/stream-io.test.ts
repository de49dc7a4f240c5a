import { createHash, randomBytes } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { describe, expect, it } from 'vitest'
import { AbortedError, InvalidArgumentError, StreamClosedError, TimeoutError } from '../../src/errors.ts'
import { defaultWrapStreamOptions, type FrameStream } from '../../src/net/index.ts'
import { wrapStream } from '../../src/net/stream-io.ts'
import { echoStream, eventually, network, random, readAll, sha256, sleep } from './helpers.ts'

const ECHO = '/haul-test/echo/1.0.0'

const KiB = 1024
const MiB = 1024 * KiB

describe('FrameStream backpressure', () => {
  it('a 64 MiB writer to a slow reader never has more than a window and a buffer in flight', async () => {
    const window = { maxStreamWindowSize: 1 * MiB }
    const maxBufferedIncoming = 512 * KiB
    const TOTAL = 64 * MiB
    const pool = new Uint8Array(randomBytes(4 * MiB))
    const sender = await network({ yamux: window, maxBufferedIncoming })
    const receiver = await network({ yamux: window, maxBufferedIncoming })

    let written = 0
    let maxOutgoing = 0
    const sentHash = createHash('sha256')
    await sender.handle('/test/source/1', async (s) => {
      for (let off = 0; off < TOTAL; off += MiB) {
        const part = pool.subarray(off % pool.byteLength, (off % pool.byteLength) + MiB)
        await s.write([part])
        sentHash.update(part)
        written += part.byteLength
        maxOutgoing = Math.max(maxOutgoing, s.outgoingBufferedBytes)
      }
      await s.close()
    })

    const s = await receiver.openStream(sender.peerId, sender.addresses, '/test/source/1')
    await s.closeWrite()
    const it = s.incoming[Symbol.asyncIterator]()

    // Phase 1: do not read at all. The writer must stall, not buffer 64 MiB.
    let last = -1
    let still = 0
    while (still < 8 && written < TOTAL) {
      await sleep(50)
      still = written === last ? still + 1 : 0
      last = written
    }
    const slice = defaultWrapStreamOptions.writeSliceBytes
    const bound = slice + 2 * window.maxStreamWindowSize + maxBufferedIncoming
    expect(written).toBeLessThanOrEqual(bound)
    expect(s.incomingBufferedBytes).toBeGreaterThanOrEqual(maxBufferedIncoming)
    expect(s.incomingBufferedBytes).toBeLessThanOrEqual(bound)

    // Phase 2: read slowly to the end; the bound holds throughout and the bytes are intact.
    let consumed = 0
    let maxInFlight = 0
    let maxIncoming = 0
    let sinceNap = 0
    const gotHash = createHash('sha256')
    for (let r = await it.next(); !r.done; r = await it.next()) {
      for (const buf of r.value instanceof Uint8Array ? [r.value] : r.value) gotHash.update(buf)
      consumed += r.value.byteLength
      sinceNap += r.value.byteLength
      maxInFlight = Math.max(maxInFlight, written - consumed)
      maxIncoming = Math.max(maxIncoming, s.incomingBufferedBytes)
      if (sinceNap >= 256 * KiB) {
        sinceNap = 0
        await sleep(2)
      }
    }
    expect(consumed).toBe(TOTAL)
    expect(gotHash.digest('hex')).toBe(sentHash.digest('hex'))
    expect(maxInFlight).toBeLessThanOrEqual(bound)
    expect(maxIncoming).toBeLessThanOrEqual(bound)
    // libp2p's own write queue never holds more than the one slice being sent.
    expect(maxOutgoing).toBeLessThanOrEqual(slice)
  })
})

describe('FrameStream window interop', () => {
  it.each([
    [256 * KiB, 16 * MiB],
    [16 * MiB, 256 * KiB],
  ])(
    'receiver max window %d, sender max window %d: a paused receiver does not break the connection',
    async (rw, sw) => {
      const receiver = await network({ yamux: { maxStreamWindowSize: rw }, maxBufferedIncoming: 256 * KiB })
      const sender = await network({ yamux: { maxStreamWindowSize: sw } })
      const TOTAL = 24 * MiB
      await sender.handle('/test/source/1', async (s) => {
        const part = new Uint8Array(MiB)
        for (let written = 0; written < TOTAL; written += part.byteLength) await s.write([part])
        await s.close()
      })
      const s = await receiver.openStream(sender.peerId, sender.addresses, '/test/source/1')
      await s.closeWrite()
      // Let the window grow while reading fast, then stall so the receiver pauses, then drain.
      const it = s.incoming[Symbol.asyncIterator]()
      let got = 0
      while (got < 8 * MiB) {
        const r = await it.next()
        if (r.done) break
        got += r.value.byteLength
      }
      // Stop reading: the receiver pauses (stops granting window) once its buffer is full.
      await eventually(() => s.incomingBufferedBytes >= 256 * KiB, 'receiver paused')
      await sleep(300)
      for (let r = await it.next(); !r.done; r = await it.next()) got += r.value.byteLength
      expect(got).toBe(TOTAL)
      expect(receiver.connectionCount(sender.peerId)).toBe(1)
    },
  )
})

describe('FrameStream lifecycle', () => {
  it('idle timeout: no bytes for idleTimeoutMs fails the reader with TimeoutError and resets the peer', async () => {
    const a = await network()
    const b = await network()
    let serverSaw: unknown
    await b.handle('/test/silent/1', async (s) => {
      serverSaw = await readAll(s).catch((e: unknown) => e)
    })
    const s = await a.openStream(b.peerId, b.addresses, '/test/silent/1', { idleTimeoutMs: 300 })
    await expect(readAll(s)).rejects.toBeInstanceOf(TimeoutError)
    expect(s.closed).toBe(true)
    await expect(s.write([new Uint8Array(1)])).rejects.toBeInstanceOf(TimeoutError)
    await eventually(() => serverSaw !== undefined, 'server read to fail')
    expect(serverSaw).toBeInstanceOf(StreamClosedError)
  })

  it('a slow but steady stream does not time out', async () => {
    const a = await network()
    const b = await network()
    await b.handle('/test/drip/1', async (s) => {
      for (let i = 0; i < 8; i++) {
        await s.write([new Uint8Array([i])])
        await sleep(50)
      }
      await s.close()
    })
    const s = await a.openStream(b.peerId, b.addresses, '/test/drip/1', { idleTimeoutMs: 1_000 })
    await s.closeWrite()
    expect([...(await readAll(s))]).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('closeWrite ends the remote incoming; close() resolves once both sides are done', async () => {
    const a = await network()
    const b = await network()
    await b.handle('/test/count/1', async (s) => {
      const got = await readAll(s)
      await s.write([new TextEncoder().encode(String(got.byteLength))])
      await s.close()
    })
    const s = await a.openStream(b.peerId, b.addresses, '/test/count/1')
    await s.write([new Uint8Array(1000), new Uint8Array(234)])
    await s.closeWrite()
    expect(new TextDecoder().decode(await readAll(s))).toBe('1234')
    await s.close()
    expect(s.closed).toBe(true)
    await eventually(() => a.openStreamCount() === 0 && b.openStreamCount() === 0, 'streams released')
  })

  it('a peer that goes away mid-transfer is a StreamClosedError, never a clean end', async () => {
    const a = await network()
    const b = await network()
    let wrote = 0
    await b.handle('/test/endless/1', async (s) => {
      const part = new Uint8Array(64 * KiB)
      while (true) {
        await s.write([part])
        wrote += part.byteLength
      }
    })
    const s = await a.openStream(b.peerId, b.addresses, '/test/endless/1')
    const reading = readAll(s).catch((e: unknown) => e)
    await eventually(() => wrote >= MiB, 'some data sent')
    await b.stop()
    expect(await reading).toBeInstanceOf(StreamClosedError)
  })

  it('one write at a time; a cancelled blocked write aborts the stream', async () => {
    const window = { maxStreamWindowSize: 256 * KiB }
    const a = await network({ yamux: window })
    const b = await network({ yamux: window })
    let serverStream: FrameStream | undefined
    await b.handle('/test/sink-never-reads/1', (s) => {
      serverStream = s
    })
    const s = await a.openStream(b.peerId, b.addresses, '/test/sink-never-reads/1')
    const ac = new AbortController()
    const blocked = s.write([new Uint8Array(8 * MiB)], { signal: ac.signal }).catch((e: unknown) => e)
    await expect(s.write([new Uint8Array(1)])).rejects.toBeInstanceOf(InvalidArgumentError)
    await eventually(() => serverStream !== undefined, 'server got the stream')
    ac.abort()
    expect(await blocked).toBeInstanceOf(AbortedError)
    expect(s.closed).toBe(true)
    await expect(readAll(serverStream!)).rejects.toBeInstanceOf(StreamClosedError)
    // A signal that is already aborted sends nothing and leaves a fresh stream usable.
    const s2 = await a.openStream(b.peerId, b.addresses, '/test/sink-never-reads/1')
    await expect(s2.write([new Uint8Array(1)], { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
      AbortedError,
    )
    expect(s2.closed).toBe(false)
    await s2.write([new Uint8Array(1)])
  })

  /**
   * A sender that writes ROUNDS parts of 1 MiB (one write slice) from `buffers` reused in turn,
   * refilling a buffer either as soon as its write resolves or once `onReleased` says so;
   * the reader is slow, so the sender's window runs out and data queues inside libp2p.
   */
  async function reuseRun(
    mode: 'after-write' | 'after-release',
  ): Promise<{ same: boolean; released: number; releasedLater: number }> {
    const window = { maxStreamWindowSize: 256 * KiB }
    const a = await network({ yamux: window })
    const b = await network({ yamux: window })
    const ROUNDS = 8
    const PART = 1 * MiB
    const expected = createHash('sha256')
    let released = 0
    let releasedLater = 0 // after their write resolved: libp2p lent the views, no copy was made
    await a.handle('/test/reuse-source/1', async (s) => {
      const free: Uint8Array[] = [new Uint8Array(PART), new Uint8Array(PART)]
      const waiters: Array<() => void> = []
      const take = async (): Promise<Uint8Array> => {
        while (free.length === 0) await new Promise<void>((r) => waiters.push(r))
        return free.pop()!
      }
      for (let r = 0; r < ROUNDS; r++) {
        const buf = await take()
        buf.set(random(PART))
        expected.update(buf)
        let resolved = false
        const giveBack = (): void => {
          released++
          if (resolved) releasedLater++
          buf.fill(0xaa) // shows up at the reader if libp2p still held views of buf
          free.push(buf)
          waiters.shift()?.()
        }
        if (mode === 'after-release') {
          await s.write([buf], { onReleased: giveBack })
          resolved = true
        } else {
          await s.write([buf])
          giveBack()
        }
      }
      await s.close()
    })
    const s = await b.openStream(a.peerId, a.addresses, '/test/reuse-source/1')
    await s.closeWrite()
    await sleep(100)
    const got = await readAll(s)
    await a.stop()
    await b.stop()
    const same = got.length === ROUNDS * PART && sha256(got) === expected.digest('hex')
    return { same, released, releasedLater }
  }

  it('libp2p still holds views of written bytes after write resolves (why onReleased exists)', async () => {
    expect((await reuseRun('after-write')).same).toBe(false)
  })

  it('onReleased: a buffer reused only once released reaches the reader intact, with no copies', async () => {
    const { same, released, releasedLater } = await reuseRun('after-release')
    expect(same).toBe(true)
    expect(released).toBe(8)
    expect(releasedLater).toBeGreaterThan(0)
  })

  it('incoming can be iterated once', async () => {
    const a = await network()
    const b = await network()
    await b.handle('/test/close/1', (s) => s.close())
    const s = await a.openStream(b.peerId, b.addresses, '/test/close/1')
    await readAll(s)
    await expect(readAll(s)).rejects.toBeInstanceOf(InvalidArgumentError)
  })
})

describe('a raw stream aborted below haul', () => {
  it('by a deadline (AbortSignal.timeout) is a TimeoutError, by anything else a StreamClosedError', async () => {
    const nodes = await Promise.all(
      [0, 1].map(() =>
        createLibp2p({
          addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
          transports: [tcp()],
          connectionEncrypters: [noise()],
          streamMuxers: [yamux()],
        }),
      ),
    )
    const [a, b] = nodes as [Libp2p, Libp2p]
    try {
      await b.handle(ECHO, echoStream)
      for (const [reason, expected] of [
        [new DOMException('The operation was aborted due to timeout', 'TimeoutError'), TimeoutError],
        [new Error('reset by the muxer'), StreamClosedError],
      ] as const) {
        const raw = await a.dialProtocol(b.getMultiaddrs()[0]!, ECHO)
        const s = wrapStream(raw)
        const reading = readAll(s).catch((e: unknown) => e)
        raw.abort(reason)
        expect(await reading).toBeInstanceOf(expected)
      }
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })
})
