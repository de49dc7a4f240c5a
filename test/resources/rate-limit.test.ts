import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import { Engine } from '../../src/engine/engine.ts'
import { AbortedError, ConfigInvalidError } from '../../src/errors.ts'
import { Network } from '../../src/net/network.ts'
import { PROTOCOL_ID } from '../../src/protocol/messages.ts'
import { fairLimiter } from '../../src/resources/fair-queue.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { chainLimiters, type RateLimiter, TokenBucket, unlimited } from '../../src/resources/rate-limit.ts'
import { ChunkCache } from '../../src/serve/chunk-cache.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { openPublished } from '../../src/serve/publish.ts'
import { ContentRegistry } from '../../src/serve/registry.ts'
import { ServeShares } from '../../src/serve/serve-shares.ts'
import { serveStream } from '../../src/serve/server.ts'
import { UploadSpread } from '../../src/serve/upload-spread.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { tempDir, writeFile } from '../support/files.ts'

const MB = 1e6
const KiB = 1024

/** Pushes `piece`-byte pieces through `limiter` into a counting sink until `stop` aborts. */
async function pump(limiter: RateLimiter, piece: number, stop: AbortSignal, sink: { bytes: number }) {
  while (!stop.aborted) {
    try {
      await limiter.take(piece, { signal: stop })
    } catch (err) {
      if (err instanceof AbortedError) return
      throw err
    }
    sink.bytes += piece
  }
}

describe('TokenBucket', () => {
  it('grants the burst at once, then waits', async () => {
    let now = 0
    const b = new TokenBucket({ rate: 1000, burst: 100, now: () => now })
    await b.take(100)
    let done = false
    const p = b.take(50).then(() => (done = true))
    await new Promise((r) => setTimeout(r, 5))
    expect(done).toBe(false)
    now = 60 // 60 ms at 1000 B/s = 60 tokens
    await p
    expect(done).toBe(true)
    expect(b.granted).toBe(150)
  })

  it('tryTake: takes what the bucket holds now, never ahead of a waiting take', async () => {
    let now = 0
    const b = new TokenBucket({ rate: 1000, burst: 100, now: () => now })
    expect(b.tryTake(60)).toBe(true)
    expect(b.tryTake(60)).toBe(false)
    now = 20
    expect(b.tryTake(60)).toBe(true)
    const waiting = b.take(50)
    now = 200
    // The tokens are there, but the waiting take comes first.
    expect(b.tryTake(10)).toBe(false)
    await waiting
    expect(b.tryTake(10)).toBe(true)
    expect(b.granted).toBe(180)
  })

  it('refund: bytes that will not go after all are back for the next waiter, up to the burst', async () => {
    const now = 0
    const b = new TokenBucket({ rate: 1000, burst: 100, now: () => now })
    await b.take(1000) // debt: tokens = -900
    let next = false
    const p = b.take(50).then(() => (next = true))
    await new Promise((r) => setTimeout(r, 5))
    expect(next).toBe(false)
    b.refund(1000) // the clock has not moved: only the refund lets it through
    await p
    expect(next).toBe(true)
    expect(b.granted).toBe(50)
    // At most the bucket's depth comes back: 100 - 50 + 1000 is capped at 100.
    b.refund(1000)
    await b.take(100)
    let over = false
    const q = b.take(1).then(() => (over = true))
    await new Promise((r) => setTimeout(r, 5))
    expect(over).toBe(false)
    b.refund(1)
    await q
    // A chain refunds every bucket in it.
    const narrow = new TokenBucket({ rate: 1000, burst: 10, now: () => now })
    const wide = new TokenBucket({ rate: 1000, burst: 100, now: () => now })
    const chain = chainLimiters(narrow, wide)
    await chain.take(10)
    chain.refund?.(10)
    expect([narrow.granted, wide.granted]).toEqual([0, 0])
    await chain.take(10) // without the refund, the narrow bucket would wait for a clock that never moves
  })

  it('lets a take larger than the burst through and pays the debt back before the next', async () => {
    let now = 0
    const b = new TokenBucket({ rate: 10_000, burst: 100, now: () => now })
    await b.take(1000) // debt: tokens = -900
    let second = false
    const p = b.take(10).then(() => (second = true))
    now = 80
    await new Promise((r) => setTimeout(r, 20))
    expect(second).toBe(false) // still -100
    now = 92
    await p
  })

  it('an aborted waiter leaves the queue and takes nothing; the next one proceeds', async () => {
    let now = 0
    const b = new TokenBucket({ rate: 1000, burst: 100, now: () => now })
    await b.take(100)
    const ac = new AbortController()
    const first = b.take(100, { signal: ac.signal })
    const second = b.take(100)
    expect(b.waiting).toBe(2)
    ac.abort()
    await expect(first).rejects.toBeInstanceOf(AbortedError)
    expect(b.waiting).toBe(1)
    now = 100
    await second
    expect(b.granted).toBe(200)
  })

  it('rejects bad options and an already aborted signal', async () => {
    expect(() => new TokenBucket({ rate: 0 })).toThrow(ConfigInvalidError)
    expect(() => new TokenBucket({ rate: 10, burst: 0 })).toThrow(ConfigInvalidError)
    const b = new TokenBucket({ rate: 10 })
    await expect(b.take(1, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError)
    await expect(b.take(-1)).rejects.toThrow()
  })

  it('chains skip undefined and unlimited entries', () => {
    const b = new TokenBucket({ rate: 10 })
    expect(chainLimiters(undefined, unlimited)).toBe(unlimited)
    expect(chainLimiters(undefined, b)).toBe(b)
  })

  // Wall clock on purpose: the limits must hold against real timers on a busy machine.
  it('holds configured limits within ±5% over 10 s: one bucket, chunks above the burst, global + per-transfer', async () => {
    const stop = new AbortController()
    const single = { bytes: 0 }
    const big = { bytes: 0 }
    const x = { bytes: 0 }
    const y = { bytes: 0 }
    const z = { bytes: 0 }
    const oneBucket = new TokenBucket({ rate: 4 * MB })
    const bigChunks = new TokenBucket({ rate: 2 * MB, burst: 64 * KiB }) // every 1 MiB take goes into debt
    const global = new TokenBucket({ rate: 6 * MB })
    const xOwn = new TokenBucket({ rate: 1 * MB })
    const t0 = performance.now()
    const runs = [
      pump(oneBucket, 64 * KiB, stop.signal, single),
      pump(bigChunks, 1024 * KiB, stop.signal, big),
      pump(chainLimiters(xOwn, global), 64 * KiB, stop.signal, x),
      pump(chainLimiters(undefined, global), 64 * KiB, stop.signal, y),
      pump(global, 64 * KiB, stop.signal, z),
    ]
    await new Promise((r) => setTimeout(r, 10_000))
    stop.abort()
    await Promise.all(runs)
    const seconds = (performance.now() - t0) / 1000
    const rate = (s: { bytes: number }) => s.bytes / seconds
    expect(rate(single) / (4 * MB)).toBeGreaterThan(0.95)
    expect(rate(single) / (4 * MB)).toBeLessThan(1.05)
    expect(rate(big) / (2 * MB)).toBeGreaterThan(0.95)
    expect(rate(big) / (2 * MB)).toBeLessThan(1.05)
    expect(rate(x) / (1 * MB)).toBeGreaterThan(0.95)
    expect(rate(x) / (1 * MB)).toBeLessThan(1.05)
    const all = rate(x) + rate(y) + rate(z)
    expect(all / (6 * MB)).toBeGreaterThan(0.95)
    expect(all / (6 * MB)).toBeLessThan(1.05)
    // y and z share what x leaves of the global limit (FIFO bucket: roughly evenly).
    expect(Math.abs(rate(y) - rate(z)) / (5 * MB)).toBeLessThan(0.1)
  }, 30_000)

  it('weighted flows under one global bucket get bandwidth 4:2:1 within ±10% (wall clock, 4 s)', async () => {
    const global = new TokenBucket({ rate: 7 * MB })
    const fair = fairLimiter(global)
    const stop = new AbortController()
    const sinks = { high: { bytes: 0 }, normal: { bytes: 0 }, low: { bytes: 0 } }
    // Each flow keeps several requests waiting, as a transfer with a window of requests would.
    const runs = (['high', 'normal', 'low'] as const).flatMap((p) => {
      const flow = fair.flow(p)
      return [0, 1, 2].map(() => pump(flow, 64 * KiB, stop.signal, sinks[p]))
    })
    await new Promise((r) => setTimeout(r, 4_000))
    stop.abort()
    await Promise.all(runs)
    const total = sinks.high.bytes + sinks.normal.bytes + sinks.low.bytes
    for (const [p, w] of [
      ['high', 4],
      ['normal', 2],
      ['low', 1],
    ] as const) {
      const share = sinks[p].bytes / total
      expect(share / (w / 7)).toBeGreaterThan(0.9)
      expect(share / (w / 7)).toBeLessThan(1.1)
    }
  }, 20_000)
})

describe('upload limit in the serving session', () => {
  it('a sender with an upload limiter serves no faster than its limit (real engine receiver)', async () => {
    const { dir, cleanup } = await tempDir()
    const config = resolveEngineConfig({ workers: 1, codec: 'none' })
    const network = await Network.create({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const pool = new WorkerPool({ threads: 1 })
    const budget = new MemoryBudget({ limit: config.memoryBudget })
    const registry = new ContentRegistry()
    const stop = new AbortController()
    const upload = new TokenBucket({ rate: 4 * MB })
    await network.handle(PROTOCOL_ID, (stream) =>
      serveStream(stream, {
        registry,
        pool,
        shares: new ServeShares(budget),
        cache: new ChunkCache(budget, 0),
        codec: config.codec,
        limits: config.server,
        signal: stop.signal,
        upload: new UploadSpread(upload, {
          spreadMs: config.server.spreadMs,
          maxTracked: config.server.spreadChunks,
        }),
      }),
    )
    const receiver = await Engine.create({ workers: 1 })
    try {
      const src = join(dir, 'up.src')
      await writeFile(src, 8 * 1024 * KiB, 'random')
      const index = await indexFile(src, { chunking: config.chunking, pool, budget })
      registry.add(await openPublished(src, index))
      const ticket = encodeTicket({ cid: index.cid, peerId: network.peerId, addrs: network.addresses })
      const t0 = performance.now()
      const r = await receiver.fetch(ticket, join(dir, 'up.out')).result
      const seconds = (performance.now() - t0) / 1000
      expect(upload.granted).toBe(r.bytes)
      // Everything but the first burst waited for tokens: at most 5% above the limit.
      expect((r.bytes - upload.burst) / seconds).toBeLessThan(4 * MB * 1.05)
      expect(r.bytes / seconds).toBeGreaterThan(4 * MB * 0.7)
    } finally {
      stop.abort()
      await receiver.stop()
      await registry.closeAll()
      await network.stop()
      await pool.destroy()
      await cleanup()
    }
  })
})

describe('download limit of a fetch', () => {
  it('a fetch no larger than one request still keeps to its limit: requests ask for no more than its burst', async () => {
    const { dir, cleanup } = await tempDir()
    const chunk = 1024 * KiB
    const sender = await Engine.create({ workers: 1, chunking: { kind: 'fixed', size: chunk } })
    const receiver = await Engine.create({ workers: 1 })
    try {
      const src = join(dir, 'small.src')
      // Four chunks: one request of the default eight would take them all from the bucket at once.
      await writeFile(src, 4 * chunk, 'random')
      const { ticket } = await sender.publish(src)
      const rate = 1024 * KiB
      const t0 = performance.now()
      const r = await receiver.fetch(ticket, join(dir, 'small.out'), { maxBytesPerSec: rate }).result
      const seconds = (performance.now() - t0) / 1000
      // The bucket's burst (64 KiB) and one chunk go at once; the rest waits for tokens.
      expect(seconds).toBeGreaterThan(((r.bytes - 64 * KiB - chunk) / rate) * 0.95)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
      await cleanup()
    }
  })
})
