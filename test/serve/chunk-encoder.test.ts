import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentChangedError } from '../../src/errors.ts'
import { type Lease, MemoryBudget } from '../../src/resources/memory-budget.ts'
import { type EncodedChunk, readAndEncodeChunk, releaseAll } from '../../src/serve/chunk-encoder.ts'
import type { PublishedContent } from '../../src/serve/registry.ts'
import { ServeShares } from '../../src/serve/serve-shares.ts'
import type { CodecPolicy } from '../../src/workers/codecs.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { randomData, textLike } from '../workers/data.ts'

const MiB = 1024 * 1024

/**
 * One chunk whose source serves `served` while its leaf says `indexed`: a change that no
 * fingerprint saw (what a write within the filesystem's timestamp tick would leave).
 */
function content(
  indexed: Uint8Array,
  served: Uint8Array,
  needsChunkHash: boolean,
  hashed: Array<[number, bigint]> = [],
): PublishedContent {
  const entry = { offset: 0, length: indexed.length, hash: createHash('sha256').update(indexed).digest() }
  return {
    cid: new Uint8Array(32),
    path: 'test',
    header: undefined as never,
    headerBytes: new Uint8Array(0),
    reader: {
      pageCount: 1,
      readPage: async () => undefined as never,
      entry: async () => entry,
      close: async () => {},
    },
    source: {
      path: 'test',
      needsChunkHash,
      checkUnchanged: async () => {},
      chunkHashed: (index, readStartNs) => hashed.push([index, readStartNs]),
      read: async (offset, length, into) => into.set(served.subarray(offset, offset + length)),
      close: async () => {},
    },
  }
}

describe('readAndEncodeChunk: which chunks are hashed, which go to a worker', () => {
  let pool: WorkerPool
  let encodes = 0
  beforeAll(() => {
    pool = new WorkerPool({ threads: 1 })
    const encode = pool.encode.bind(pool)
    pool.encode = (...args) => {
      encodes++
      return encode(...args)
    }
  })
  afterAll(() => pool.destroy())

  async function serve(c: PublishedContent, codec: CodecPolicy, verifySource?: 'auto' | 'always') {
    const budget = new MemoryBudget({ limit: 8 * MiB })
    const before = encodes
    const signal = new AbortController().signal
    const enc = await readAndEncodeChunk({ budget, pool, codec, verifySource }, c, 0, signal)
    enc.release()
    expect(budget.used).toBe(0)
    return { enc, hops: encodes - before }
  }

  it('a racy source: a chunk that no longer matches its leaf is refused (CONTENT_CHANGED)', async () => {
    const indexed = randomData(MiB, 1)
    const served = indexed.slice()
    served[12345]! ^= 1
    for (const codec of ['none', 'auto'] as const) {
      await expect(serve(content(indexed, served, true), codec)).rejects.toBeInstanceOf(ContentChangedError)
    }
  })

  it("verifySource 'always' hashes a source the fingerprint vouches for", async () => {
    const indexed = randomData(MiB, 2)
    const served = indexed.slice()
    served[0]! ^= 1
    await expect(serve(content(indexed, served, false), 'none', 'always')).rejects.toBeInstanceOf(
      ContentChangedError,
    )
    const ok = await serve(content(indexed, indexed, false), 'none', 'always')
    expect(ok.hops).toBe(1)
  })

  it('a vouched-for source: incompressible chunks are sent as read, without a worker', async () => {
    const data = randomData(MiB, 3)
    for (const codec of ['none', 'auto'] as const) {
      const { enc, hops } = await serve(content(data, data, false), codec)
      expect(hops).toBe(0)
      expect(enc.codec).toBe('none')
      expect(enc.afterSend).toBe('recycle')
      expect(Buffer.compare(enc.payload, data)).toBe(0)
    }
  })

  it('a vouched-for source: compressible chunks still go to a worker, unhashed, and come back zstd', async () => {
    const data = textLike(MiB, 4)
    const { enc, hops } = await serve(content(data, data, false), 'auto')
    expect(hops).toBe(1)
    expect(enc.codec).toBe('zstd')
    expect(enc.payload.length).toBeLessThan(data.length * 0.9)
    // zlib's output, this chunk's alone: freed once sent, never kept for reuse.
    expect(enc.afterSend).toBe('free')
    const racy = await serve(content(data, data, true), 'auto')
    expect(racy.enc.codec).toBe('zstd')
    expect(Buffer.compare(racy.enc.payload, enc.payload)).toBe(0)
  })
  it('tells the source which chunks it hashed and matched, with when their read started', async () => {
    const data = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff)
    const hashed: Array<[number, bigint]> = []
    const before = BigInt(Date.now()) * 1_000_000n
    await serve(content(data, data, true, hashed), 'none')
    expect(hashed).toHaveLength(1)
    expect(hashed[0]![0]).toBe(0)
    expect(hashed[0]![1]).toBeGreaterThanOrEqual(before)
    // Unhashed (the fingerprint vouches) or mismatched: nothing to tell.
    await serve(content(data, data, false, hashed), 'none')
    const served = data.slice()
    served[5]! ^= 1
    await expect(serve(content(data, served, true, hashed), 'none')).rejects.toBeInstanceOf(
      ContentChangedError,
    )
    expect(hashed).toHaveLength(1)
  })
})

describe('releaseAll', () => {
  it("gives back a chunk as soon as it is ready: read-ahead waiting in the peer's share for the room an earlier chunk holds is not waited on first", async () => {
    const budget = new MemoryBudget({ limit: 16 * MiB })
    const shares = new ServeShares(budget)
    // Eight peers served: each one's share (12 MiB / 8) is under two chunks.
    const others = Array.from({ length: 7 }, (_, i) => shares.join(`other${i}`))
    const held = await Promise.all(others.map((p) => p.acquire(MiB)))
    const peer = shares.join('peer')
    const chunk = (lease: Promise<Lease>): Promise<EncodedChunk> =>
      lease.then((l) => ({
        index: 0,
        codec: 'none',
        rawLength: MiB,
        payload: new Uint8Array(0),
        afterSend: 'keep',
        release: () => l.release(),
      }))
    // The first takes the peer's share; the three behind it wait there for its room.
    const ahead = [0, 1, 2, 3].map(() => chunk(peer.hold(MiB)))
    await ahead[0]
    expect(peer.waiting).toBe(3)
    const done = releaseAll(ahead).then(() => true)
    expect(await Promise.race([done, new Promise((r) => setTimeout(() => r(false), 1_000))])).toBe(true)
    expect(peer.used).toBe(0)
    for (const l of held) l.release()
    peer.leave()
    for (const p of others) p.leave()
    expect(shares.stats).toEqual({ peers: 0, served: 0, leased: 0, partialBytes: 0 })
  })
})
