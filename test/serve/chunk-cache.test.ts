import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AbortedError } from '../../src/errors.ts'
import { type Lease, MemoryBudget } from '../../src/resources/memory-budget.ts'
import { ChunkCache } from '../../src/serve/chunk-cache.ts'
import type { ChunkEncoderContext, EncodedChunk } from '../../src/serve/chunk-encoder.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { PackPacer } from '../../src/serve/pack-pacer.ts'
import { openPublished } from '../../src/serve/publish.ts'
import type { PublishedContent } from '../../src/serve/registry.ts'
import { KiB, MiB } from '../../src/types.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { tempDir, writeFile } from '../support/files.ts'

const CHUNK = 64 * KiB
const CHUNKS = 16

describe('ChunkCache', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let pool: WorkerPool
  let content: PublishedContent
  let file: Buffer

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    pool = new WorkerPool({ threads: 1 })
    const src = join(dir, 'f.src')
    await writeFile(src, CHUNKS * CHUNK, 'random')
    const index = await indexFile(src, {
      chunking: { kind: 'fixed', size: CHUNK },
      pool,
      budget: new MemoryBudget({ limit: 4 * MiB }),
    })
    content = await openPublished(src, index)
    file = await readFile(src)
  })
  afterAll(async () => {
    await content.reader.close()
    await content.source.close()
    await pool.destroy()
    await cleanup()
  })

  function setup(limit: number, cacheBytes: number) {
    const budget = new MemoryBudget({ limit })
    const cache = new ChunkCache(budget, cacheBytes)
    const ctx: ChunkEncoderContext = { budget, pool, codec: 'none' }
    return { budget, cache, ctx }
  }

  /** A 4-chunk cache in a 1 MiB budget with the pack pacer (whose waits never time out here), and each peer's context. */
  function pacedSetup() {
    const budget = new MemoryBudget({ limit: 1 * MiB })
    const pacer = new PackPacer({ idleMs: 60_000, maxWaitMs: 60_000, stuckMs: 60_000 })
    const cache = new ChunkCache(budget, 4 * CHUNK, pacer)
    const peerCtx = (peer: string): ChunkEncoderContext => ({ budget, pool, codec: 'none', peer })
    return { budget, cache, peerCtx }
  }

  function expectChunk(c: EncodedChunk, index: number): void {
    expect(c.index).toBe(index)
    expect(c.codec).toBe('none')
    expect(Buffer.compare(c.payload, file.subarray(index * CHUNK, (index + 1) * CHUNK))).toBe(0)
  }

  it('single flight: concurrent requests for one chunk wait for one read', async () => {
    const { cache, ctx, budget } = setup(1 * MiB, 512 * KiB)
    const signal = new AbortController().signal
    const got = await Promise.all(Array.from({ length: 6 }, () => cache.get(ctx, content, 3, signal)))
    expect(cache.stats.reads).toBe(1)
    expect(cache.stats.hits).toBe(5)
    for (const c of got) {
      expectChunk(c, 3)
      expect(c.afterSend).toBe('keep')
      expect(c.payload).toBe(got[0]!.payload)
    }
    // The entry is counted once against the budget, whoever holds it.
    expect(cache.stats.cachedBytes).toBe(CHUNK)
    expect(budget.used).toBe(CHUNK)
    for (const c of got) c.release()
    expect(budget.used).toBe(CHUNK)
    // A later request is a hit.
    const again = await cache.get(ctx, content, 3, signal)
    expectChunk(again, 3)
    expect(cache.stats.reads).toBe(1)
    again.release()
  })

  it('a chunk that goes plain is one entry for every policy: random data read under auto at any zstd level, or none, is read once', async () => {
    const { cache, ctx } = setup(1 * MiB, 512 * KiB)
    const signal = new AbortController().signal
    const contexts: ChunkEncoderContext[] = [
      { ...ctx, codec: 'auto' },
      { ...ctx, codec: 'auto', zstdLevel: 3 },
      ctx,
      { ...ctx, codec: 'zstd', zstdLevel: 9 },
    ]
    for (const c of contexts) {
      const got = await cache.get(c, content, 5, signal)
      expectChunk(got, 5)
      got.release()
    }
    expect(cache.stats.reads).toBe(1)
    expect(cache.stats.hits).toBe(3)
    expect(cache.stats.cachedBytes).toBe(CHUNK)
  })

  it('keeps cached bytes within its bound, evicting the least recently used unpinned chunk', async () => {
    const { cache, ctx, budget } = setup(1 * MiB, 4 * CHUNK)
    const signal = new AbortController().signal
    for (let i = 0; i < CHUNKS; i++) {
      const c = await cache.get(ctx, content, i, signal)
      expectChunk(c, i)
      c.release()
      expect(cache.stats.cachedBytes).toBeLessThanOrEqual(4 * CHUNK)
      expect(budget.used).toBeLessThanOrEqual(budget.limit)
    }
    expect(cache.stats.reads).toBe(CHUNKS)
    // The last four are cached; the first is read again.
    ;(await cache.get(ctx, content, CHUNKS - 1, signal)).release()
    ;(await cache.get(ctx, content, 0, signal)).release()
    expect(cache.stats.reads).toBe(CHUNKS + 1)
  })

  it('a chunk evicted for a waiter on the budget is read again, correctly', async () => {
    const { cache, ctx, budget } = setup(8 * CHUNK, 8 * CHUNK)
    const signal = new AbortController().signal
    for (let i = 0; i < 8; i++) (await cache.get(ctx, content, i, signal)).release()
    expect(cache.stats.cachedBytes).toBe(8 * CHUNK)
    expect(budget.available).toBe(0)
    // Someone else needs the budget: the cache gives back what it must, oldest first.
    const other = await budget.acquire(3 * CHUNK)
    expect(cache.stats.cachedBytes).toBe(5 * CHUNK)
    expect(budget.used).toBeLessThanOrEqual(budget.limit)
    const again = await cache.get(ctx, content, 0, signal)
    expectChunk(again, 0)
    expect(cache.stats.reads).toBe(9)
    again.release()
    other.release()
    expect(budget.used).toBeLessThanOrEqual(budget.limit)
  })

  it('never evicts a chunk still being sent', async () => {
    const { cache, ctx, budget } = setup(8 * CHUNK, 8 * CHUNK)
    const signal = new AbortController().signal
    const held = await cache.get(ctx, content, 0, signal)
    for (let i = 1; i < 8; i++) (await cache.get(ctx, content, i, signal)).release()
    const other = await budget.acquire(7 * CHUNK)
    // Only the pinned chunk is left, and its bytes are still counted.
    expect(cache.stats.cachedBytes).toBe(CHUNK)
    expectChunk(held, 0)
    held.release()
    other.release()
    expect(budget.used).toBe(CHUNK)
  })

  it('a chunk that finds no room is lent while it is being sent, then goes with its last sender', async () => {
    const { cache, ctx, budget } = setup(1 * MiB, CHUNK - 1)
    const signal = new AbortController().signal
    const first = await cache.get(ctx, content, 2, signal)
    const second = await cache.get(ctx, content, 2, signal)
    expect(cache.stats).toMatchObject({ reads: 1, hits: 1, cachedBytes: 0 })
    expect(second.payload).toBe(first.payload)
    expect(budget.used).toBe(CHUNK)
    first.release()
    second.release()
    expect(budget.used).toBe(0)
    ;(await cache.get(ctx, content, 2, signal)).release()
    expect(cache.stats.reads).toBe(2)
  })

  it('a waiter whose reader is aborted while reading reads the chunk itself', async () => {
    const { cache, ctx } = setup(1 * MiB, 512 * KiB)
    const gate = Promise.withResolvers<void>()
    const reading = Promise.withResolvers<void>()
    const slow = withSlowRead(content, async () => {
      reading.resolve()
      await gate.promise
    })
    const reader = new AbortController()
    const first = cache.get(ctx, slow, 5, reader.signal)
    await reading.promise
    const second = cache.get(ctx, slow, 5, new AbortController().signal)
    reader.abort()
    gate.resolve()
    await expect(first).rejects.toBeInstanceOf(AbortedError)
    const c = await second
    expectChunk(c, 5)
    c.release()
    expect(cache.stats.reads).toBe(2)
  })

  it("a request does not wait for a read still waiting in its peer's share", async () => {
    const { cache, ctx, budget } = setup(1 * MiB, 512 * KiB)
    const stuck = new AbortController()
    // One peer's share has no room (it stopped reading, say); another's has.
    const full: ChunkEncoderContext = {
      ...ctx,
      hold: (_bytes, opts) =>
        new Promise<Lease>((_resolve, reject) =>
          opts.signal.addEventListener('abort', () => reject(new AbortedError())),
        ),
    }
    const free: ChunkEncoderContext = { ...ctx, hold: async (bytes) => budget.tryAcquire(0) ?? fail(bytes) }
    const first = cache.get(full, content, 7, stuck.signal)
    const c = await cache.get(free, content, 7, new AbortController().signal)
    expectChunk(c, 7)
    c.release()
    stuck.abort()
    await expect(first).rejects.toBeInstanceOf(AbortedError)
    expect(cache.stats.reads).toBe(1)
  })

  it('keeps a fast and a slow receiver together: each chunk read once, within the cache bound', async () => {
    const { budget, cache, peerCtx } = pacedSetup()
    const signal = new AbortController().signal
    const run = async (peer: string, from: number) => {
      for (let i = from; i < CHUNKS; i++) {
        const c = await cache.get(peerCtx(peer), content, i, signal)
        expectChunk(c, i)
        c.release()
        expect(cache.stats.cachedBytes).toBeLessThanOrEqual(4 * CHUNK)
        expect(budget.used).toBeLessThanOrEqual(budget.limit)
      }
    }
    // The slow one starts alone (its chunk 0 is wanted by no one else, so not kept), then both run.
    ;(await cache.get(peerCtx('slow'), content, 0, signal)).release()
    // The fast one goes alone until it waits for the slow one, a window (3 chunks) ahead of it.
    let fastDone = false
    const fast = run('fast', 0).then(() => (fastDone = true))
    while (cache.stats.paced === 0) await new Promise((r) => setImmediate(r))
    expect(fastDone).toBe(false)
    await Promise.all([fast, run('slow', 1)])
    // Every chunk from 1 on read once, by the fast one, and found by the slow one.
    expect(cache.stats.reads).toBe(CHUNKS + 1)
    expect(cache.stats.hits).toBe(CHUNKS - 1)
    expect(cache.stats.paced).toBeGreaterThanOrEqual(1)
  })

  it('a chunk no other active receiver wants is lent without being cached', async () => {
    const { budget, cache, peerCtx: ctx } = pacedSetup()
    const signal = new AbortController().signal
    for (let i = 0; i < 3; i++) {
      const c = await cache.get(ctx('a'), content, i, signal)
      // Read as without a cache: its buffer may go back to the recycler once sent.
      expect(c.afterSend).toBe('recycle')
      c.release()
    }
    expect(cache.stats.cachedBytes).toBe(0)
    expect(budget.used).toBe(0)
    // Once b is known (its next chunk is 1), what a reads from 1 on is kept for b.
    ;(await cache.get(ctx('b'), content, 0, signal)).release()
    ;(await cache.get(ctx('a'), content, 3, signal)).release()
    expect(cache.stats.cachedBytes).toBe(CHUNK)
    ;(await cache.get(ctx('b'), content, 1, signal)).release()
    ;(await cache.get(ctx('b'), content, 2, signal)).release()
    ;(await cache.get(ctx('b'), content, 3, signal)).release()
    expect(cache.stats).toMatchObject({ reads: 7, hits: 1 })
  })

  it('disabled (0 bytes): every request reads, nothing is cached', async () => {
    const { cache, ctx, budget } = setup(1 * MiB, 0)
    const signal = new AbortController().signal
    const got = await Promise.all([cache.get(ctx, content, 1, signal), cache.get(ctx, content, 1, signal)])
    for (const c of got) {
      expectChunk(c, 1)
      c.release()
    }
    expect(cache.stats).toMatchObject({ reads: 2, hits: 0, cachedBytes: 0 })
    expect(budget.used).toBe(0)
  })
})

/** `content` whose source waits for `before` ahead of every read. */
function withSlowRead(content: PublishedContent, before: () => Promise<void>): PublishedContent {
  const source = new Proxy(content.source, {
    get(target, prop) {
      if (prop === 'read') {
        return async (offset: number, length: number, into: Uint8Array) => {
          await before()
          return target.read(offset, length, into)
        }
      }
      const v: unknown = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { ...content, source }
}

function fail(bytes: number): never {
  throw new Error(`no lease of ${bytes} bytes`)
}
