import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Engine, type EngineOptions, type EngineStats, type FetchResult } from '../../src/index.ts'
import { KiB, MiB } from '../../src/types.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const CHUNK = 64 * KiB
const SIZE = 8 * MiB + 321
const CHUNKS = Math.ceil(SIZE / CHUNK)
const RECEIVERS = 8
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

interface FanOutShape {
  /** @default RECEIVERS */
  readonly receivers?: number
  /** @default SIZE */
  readonly size?: number
  readonly receiverOpts?: EngineOptions
}

/**
 * One sender, `receivers` engines fetching its one file at once, each checked byte-identical;
 * the sender's stats sampled throughout, and each fetch's result.
 */
async function fanOut(
  senderOpts: EngineOptions,
  shape: FanOutShape = {},
): Promise<{ samples: EngineStats[]; after: EngineStats; results: FetchResult[] }> {
  const { receivers: count = RECEIVERS, size = SIZE, receiverOpts = {} } = shape
  const { dir, cleanup } = await tempDir()
  const engines: Engine[] = []
  try {
    const sender = await Engine.create({
      listen: LOOPBACK,
      workers: 1,
      chunking: { kind: 'fixed', size: CHUNK },
      ...senderOpts,
    })
    engines.push(sender)
    const src = join(dir, 'f.src')
    await writeFile(src, size, 'random')
    const { ticket } = await sender.publish(src)
    const receivers = await Promise.all(
      Array.from({ length: count }, () => Engine.create({ listen: LOOPBACK, workers: 1, ...receiverOpts })),
    )
    engines.push(...receivers)
    const samples: EngineStats[] = []
    const results = await Promise.all(
      receivers.map(
        (r, i) =>
          r.fetch(ticket, join(dir, `r${i}.out`), { onProgress: () => samples.push(sender.stats()) }).result,
      ),
    )
    const want = await sha256File(src)
    for (let i = 0; i < count; i++) expect(await sha256File(join(dir, `r${i}.out`))).toBe(want)
    return { samples, after: sender.stats(), results }
  } finally {
    await Promise.all(engines.map((e) => e.stop()))
    await cleanup()
  }
}

function expectWithinBounds(s: EngineStats): void {
  expect(s.memory.usedBytes).toBeLessThanOrEqual(s.memory.limitBytes)
  expect(s.memory.peakBytes).toBeLessThanOrEqual(s.memory.limitBytes)
  expect(s.serving.chunks.cachedBytes).toBeLessThanOrEqual(s.serving.chunks.cacheLimitBytes)
}

describe('one sender, many receivers of one file at once', () => {
  it('under an upload limit, least-sent chunks first: receivers only the sender can serve all complete byte-identical, none retried, every chunk sent to each once', async () => {
    const size = 6 * MiB + 5
    const { after, results } = await fanOut(
      {
        chunking: { kind: 'fixed', size: 256 * KiB },
        limits: { uploadBytesPerSec: 4 * MiB },
        server: { spreadMs: 6_000 },
      },
      { receivers: 4, size, receiverOpts: { timeouts: { requestMs: 12_000 } } },
    )
    for (const r of results) expect(r.retries).toBe(0)
    // Every chunk went to every receiver once, through the limit.
    expect(after.serving.chunks.served).toBe(4 * Math.ceil(size / (256 * KiB)))
  })

  it(`${RECEIVERS} receivers get identical bytes for at most 1.2 disk reads per chunk of the file`, async () => {
    // The default cache, half of a 4 MiB budget: 32 of the file's 129 chunks, so the receivers
    // must be kept within that window of each other (pack-pacer.ts).
    const { samples, after } = await fanOut({ memoryBudget: 4 * MiB })
    expect(after.serving.chunks.cacheLimitBytes).toBe(2 * MiB)
    expect(samples.length).toBeGreaterThan(0)
    for (const s of samples) expectWithinBounds(s)
    expectWithinBounds(after)
    const { reads, served, cacheHits } = after.serving.chunks
    expect(served).toBeGreaterThanOrEqual(RECEIVERS * CHUNKS)
    // Disk reads per chunk of the file (each receiver is served every chunk once).
    expect(reads / CHUNKS).toBeLessThanOrEqual(1.2)
    expect(reads + cacheHits).toBeGreaterThanOrEqual(served)
  })

  it('under a small budget the cache gives way: bytes identical, budget and cache within their bounds', async () => {
    // 4 MiB: 64 chunks for 8 peers' read-ahead and a 3 MiB cache, so entries are evicted for waiters.
    const { samples, after } = await fanOut({ memoryBudget: 4 * MiB, serveCacheBytes: 3 * MiB })
    for (const s of samples) expectWithinBounds(s)
    expectWithinBounds(after)
    expect(after.serving.chunks.served).toBeGreaterThanOrEqual(RECEIVERS * CHUNKS)
  })

  it('with the cache off every chunk served is read', async () => {
    const { after } = await fanOut({ serveCacheBytes: 0 })
    const { reads, served, cacheHits, cachedBytes } = after.serving.chunks
    expect(served).toBeGreaterThanOrEqual(RECEIVERS * CHUNKS)
    expect(reads).toBe(served)
    expect(cacheHits).toBe(0)
    expect(cachedBytes).toBe(0)
  })
})
