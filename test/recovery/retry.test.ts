import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  Engine,
  type EngineOptions,
  type HaulError,
  type PeerUnreachableError,
  RetriesExhaustedError,
} from '../../src/index.ts'
import { Network } from '../../src/net/network.ts'
import { PROTOCOL_ID } from '../../src/protocol/messages.ts'
import { journalPath } from '../../src/storage/journal.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { FaultProxy, proxyTicket, randomInt, tcpPortOf } from '../support/fault-proxy.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { startSender } from '../support/sender.ts'
import { servedBytes } from '../support/served.ts'

const MiB = 1024 * 1024
const FAST_RETRY = { maxAttempts: 6, baseDelayMs: 20, maxDelayMs: 200 }

describe('retries through a fault proxy (real sockets)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  const served = servedBytes()
  let ticket: string
  let src: string
  let srcHash: string
  const SIZE = 24 * MiB + 777

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-retry-'))
    sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap: served.wrap })
    src = join(dir, 'src.bin')
    await writeFile(src, SIZE, 'random')
    srcHash = await sha256File(src)
    ticket = await sender.publish(src)
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  async function receiver(extra: EngineOptions = {}): Promise<Engine> {
    return Engine.create({
      workers: 1,
      retry: FAST_RETRY,
      fetch: { windowBytes: 4 * MiB },
      ...extra,
    })
  }

  it('connections cut at random byte offsets: the transfer reconnects and completes verified', async () => {
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      // The first five connections are cut somewhere in their first 6 MiB; the sixth is left alone.
      plan: (i) => (i < 5 ? { cutAfterBytes: randomInt(64 * 1024, 6 * MiB) } : undefined),
    })
    const engine = await receiver()
    try {
      const retries: RetryInfo[] = []
      const before = served.bytes
      const dest = join(dir, 'cut.out')
      const r = await engine.fetch(proxyTicket(ticket, proxy), dest, { onRetry: (i) => retries.push(i) })
        .result
      expect(await sha256File(dest)).toBe(srcHash)
      expect(proxy.stats.cuts).toBe(5)
      expect(r.retries).toBe(retries.length)
      expect(retries.length).toBeGreaterThanOrEqual(5)
      for (const i of retries)
        expect(['STREAM_CLOSED', 'TIMEOUT', 'PEER_UNREACHABLE']).toContain(i.error.code)
      // Each cut costs at most the window in flight; what was written is never fetched again.
      expect(served.bytes - before - SIZE).toBeLessThanOrEqual(5 * 4 * MiB)
      expect(existsSync(journalPath(dest))).toBe(false)
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('a cut while the next request waits for its rate-limit turn: the transfer retries (never ABORTED) and completes', async () => {
    // At 8 MB/s the fetch loop spends most of its time waiting for the limiter; a cut fails the
    // requests in flight, and that wait, cut short, must report the cut, not an abort.
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      plan: (i) => (i < 3 ? { cutAfterBytes: (i + 1) * 2 * MiB } : undefined),
    })
    const engine = await receiver()
    try {
      const retries: RetryInfo[] = []
      const dest = join(dir, 'limited.out')
      const r = await engine.fetch(proxyTicket(ticket, proxy), dest, {
        maxBytesPerSec: 8_000_000,
        onRetry: (i) => retries.push(i),
      }).result
      expect(await sha256File(dest)).toBe(srcHash)
      expect(proxy.stats.cuts).toBe(3)
      expect(r.retries).toBe(retries.length)
      expect(retries.map((i) => i.error.code)).not.toContain('ABORTED')
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('connections cut mid-chunk: chunk bytes arriving count as progress, so four such cuts do not exhaust three attempts', async () => {
    // Every cut lands inside the first 1 MiB chunk: no chunk is ever verified before it.
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      plan: (i) => (i < 4 ? { cutAfterBytes: 300 * 1024 } : undefined),
    })
    const engine = await receiver({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } })
    try {
      const dest = join(dir, 'midchunk.out')
      const r = await engine.fetch(proxyTicket(ticket, proxy), dest).result
      expect(proxy.stats.cuts).toBe(4)
      expect(r.retries).toBe(4)
      expect(await sha256File(dest)).toBe(srcHash)
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('a link that always breaks mid-chunk: once maxStallMs passes without a verified chunk, maxAttempts more failures end it (RETRIES_EXHAUSTED)', async () => {
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      plan: () => ({ cutAfterBytes: 300 * 1024 }),
    })
    const engine = await receiver({
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxStallMs: 800 },
    })
    try {
      const retries: RetryInfo[] = []
      const err = await engine
        .fetch(proxyTicket(ticket, proxy), join(dir, 'never-whole.out'), { onRetry: (i) => retries.push(i) })
        .result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RetriesExhaustedError)
      // While the stall was young, the chunk bytes of every cut attempt kept the count at 1; after
      // it, failures counted: the last two retries are attempts 1 and 2 of 3.
      expect(retries.length).toBeGreaterThan(2)
      expect(
        retries
          .map((r) => r.attempt)
          .slice(0, -1)
          .every((a) => a === 1),
      ).toBe(true)
      expect(retries.at(-1)!.attempt).toBe(2)
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('a stalled peer trips the idle timeout; the transfer retries and completes once bytes flow again', async () => {
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      plan: (i) => (i === 0 ? { stallAfterBytes: 3 * MiB, stallMs: 2500 } : undefined),
    })
    const engine = await receiver({ timeouts: { idleMs: 600, requestMs: 600, connectMs: 5000 } })
    try {
      const retries: RetryInfo[] = []
      const dest = join(dir, 'stall.out')
      const r = await engine.fetch(proxyTicket(ticket, proxy), dest, { onRetry: (i) => retries.push(i) })
        .result
      expect(await sha256File(dest)).toBe(srcHash)
      expect(r.retries).toBeGreaterThanOrEqual(1)
      expect(retries[0]!.error.code).toBe('TIMEOUT')
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('a peer never reached in this fetch: maxAttemptsFirstContact tries, then its own PEER_UNREACHABLE', async () => {
    const engine = await receiver({ retry: { maxAttempts: 10, maxAttemptsFirstContact: 3, baseDelayMs: 20 } })
    try {
      const { cid, providers } = decodeSwarmTicket(ticket)
      const { peerId } = providers[0]!
      const nowhere = encodeTicket({ cid, peerId, addrs: ['/ip4/127.0.0.1/tcp/1'] })
      let retries = 0
      const err = await engine
        .fetch(nowhere, join(dir, 'nowhere.out'), { onRetry: () => retries++ })
        .result.catch((e: unknown) => e)
      expect((err as PeerUnreachableError).code).toBe('PEER_UNREACHABLE')
      expect(retries).toBe(2)
    } finally {
      await engine.stop()
    }
  })

  it('a peer that takes the haul stream and never says hello: maxAttemptsFirstContact tries, then TIMEOUT', async () => {
    const silent = await Network.create({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    let streams = 0
    await silent.handle(PROTOCOL_ID, () => {
      streams++ // kept open, never written to
    })
    const engine = await receiver({
      timeouts: { idleMs: 800, requestMs: 400 },
      retry: { maxAttempts: 10, maxAttemptsFirstContact: 3, baseDelayMs: 20 },
    })
    try {
      const { cid } = decodeSwarmTicket(ticket)
      const mute = encodeTicket({ cid, peerId: silent.peerId, addrs: silent.addresses })
      let retries = 0
      const err = await engine
        .fetch(mute, join(dir, 'mute.out'), { onRetry: () => retries++ })
        .result.catch((e: unknown) => e)
      expect((err as HaulError).code).toBe('TIMEOUT')
      expect(retries).toBe(2)
      expect(streams).toBe(3)
    } finally {
      await engine.stop()
      await silent.stop()
    }
  })

  it('an outage longer than maxAttempts failures but shorter than maxStallMs: ridden out, the transfer completes', async () => {
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      // Connection 0 is cut after 5 MiB; the next eight before a byte gets through; then the link is back.
      plan: (i) => (i === 0 ? { cutAfterBytes: 5 * MiB } : i <= 8 ? { cutAfterBytes: 0 } : undefined),
    })
    const engine = await receiver({
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxStallMs: 60_000 },
    })
    try {
      const retries: RetryInfo[] = []
      const dest = join(dir, 'outage.out')
      const r = await engine.fetch(proxyTicket(ticket, proxy), dest, { onRetry: (i) => retries.push(i) })
        .result
      expect(await sha256File(dest)).toBe(srcHash)
      // More failures in a row than maxAttempts, told as an outage (no limit of attempts).
      expect(r.retries).toBeGreaterThan(3)
      expect(retries.filter((i) => i.maxAttempts === Number.POSITIVE_INFINITY).length).toBeGreaterThan(2)
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })

  it('a peer that stays away: RETRIES_EXHAUSTED once maxStallMs passed without progress and maxAttempts failed, part file and journal kept', async () => {
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      // Connection 0 is cut after 5 MiB; every later one is cut before a byte gets through.
      plan: (i) => ({ cutAfterBytes: i === 0 ? 5 * MiB : 0 }),
    })
    const engine = await receiver({
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20, maxStallMs: 1_000 },
    })
    try {
      const retries: RetryInfo[] = []
      const dest = join(dir, 'gone.out')
      const err = await engine
        .fetch(proxyTicket(ticket, proxy), dest, { onRetry: (i) => retries.push(i) })
        .result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RetriesExhaustedError)
      expect((err as RetriesExhaustedError).code).toBe('RETRIES_EXHAUSTED')
      // The first cut came after progress, so the count restarted at 1; the failures after it are an
      // outage (no attempt limit) until maxStallMs has passed, then the next one ends it.
      const n = retries.length + 1
      expect((err as Error).message).toContain(`gave up after ${n} attempts in a row`)
      expect((err as Error).message).toContain('What was verified is kept beside the destination')
      expect(retries.map((r) => r.attempt)).toEqual(Array.from({ length: n - 1 }, (_, i) => i + 1))
      expect(retries.filter((r) => r.maxAttempts === Number.POSITIVE_INFINITY).length).toBeGreaterThan(1)
      expect(n).toBeGreaterThan(3)
      expect(existsSync(`${dest}.part`)).toBe(true)
      expect(existsSync(journalPath(dest))).toBe(true)
      // The state on disk resumes: a direct fetch later completes and keeps what was there.
      const direct = await engine.fetch(ticket, dest).result
      expect(direct.resume.mode).toBe('journal')
      expect(direct.resume.chunksKept).toBeGreaterThan(0)
      expect(await sha256File(dest)).toBe(srcHash)
    } finally {
      await engine.stop()
      await proxy.close()
    }
  })
})
