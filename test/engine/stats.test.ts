import { join } from 'node:path'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { fetchShareOf } from '../../src/engine/engine.ts'
import { InternalError } from '../../src/errors.ts'
import type { Engine, EngineOptions, EngineStats } from '../../src/index.ts'
import { FairQueue } from '../../src/resources/fair-queue.ts'
import { useEngines } from '../support/engines.ts'
import { sha256File, writeFile } from '../support/files.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** What both sides report while one fetch is running, sampled from its progress reports. */
interface Sample {
  readonly receiver: EngineStats
  readonly sender: EngineStats
}

describe('Engine.stats() follows a transfer', () => {
  const engines = useEngines({ workers: 1 })
  let sender: Engine
  let src: string
  let ticket: string

  beforeAll(async () => {
    sender = await engines.engine({ chunking: { kind: 'fixed', size: 64 * KiB } })
    src = join(engines.dir, 'f.src')
    await writeFile(src, 4 * MiB + 123, 'random')
    ticket = (await sender.publish(src)).ticket
  })

  function receiver(opts: EngineOptions = {}): Promise<Engine> {
    // Idle sessions kept well past the test, so that the count after the fetch does not race a sweep.
    return engines.engine({ sessions: { idleMs: 20_000 }, ...opts })
  }

  it('an idle engine: the configured limits, nothing in use, and plain data', async () => {
    const r = await receiver({ memoryBudget: 8 * MiB, workers: 2 })
    const s = r.stats()
    expect(s.memory.limitBytes).toBe(8 * MiB)
    expect(s.memory.fetches.limitBytes).toBe(fetchShareOf(8 * MiB))
    expect(s.memory.workBytes).toBe(0)
    expect(s.memory.availableBytes).toBe(s.memory.limitBytes - s.memory.usedBytes)
    expect(s.transfers).toEqual({ unfinished: 0, active: 0, queued: 0 })
    expect(s.serving).toEqual({
      contents: 0,
      peers: 0,
      peersLeasing: 0,
      leasedBytes: 0,
      partialFrameBytes: 0,
      // The serving cache's default limit: half the budget.
      chunks: { reads: 0, served: 0, cacheHits: 0, cachedBytes: 0, cacheLimitBytes: 4 * MiB, pacedReads: 0 },
      codecSteps: { none: 0, 'zstd-1': 0, 'zstd-3': 0, 'zstd-9': 0 },
    })
    expect(s.network).toMatchObject({ connections: 0, openStreams: 0, streamsOpened: 0 })
    expect(s.network.admission).toMatchObject({ pending: 0, inbound: 0, refusedFull: 0, evicted: 0 })
    expect(s.workers.threads).toBe(2)
    expect(s.sessions.idle).toBe(0)
    expect(JSON.parse(JSON.stringify(s))).toEqual(s)
    // A snapshot is a copy: the next one does not change it.
    expect(r.stats()).not.toBe(s)
    expect(r.stats().network.admission).not.toBe(s.network.admission)
  })

  it('during a fetch one transfer is active and the sender serves one peer; after it, nothing is held', async () => {
    const r = await receiver()
    const samples: Sample[] = []
    const handle = r.fetch(ticket, join(engines.dir, 'one.out'), {
      onProgress: () => samples.push({ receiver: r.stats(), sender: sender.stats() }),
    })
    await handle.result
    expect(await sha256File(join(engines.dir, 'one.out'))).toBe(await sha256File(src))
    // Progress is reported at least when the header arrives and at the end, both while admitted.
    expect(samples.length).toBeGreaterThanOrEqual(2)
    for (const s of samples) {
      expect(s.receiver.transfers).toEqual({ unfinished: 1, active: 1, queued: 0 })
      expect(s.receiver.network.connections).toBeGreaterThanOrEqual(1)
      expect(s.receiver.network.openStreams).toBe(1)
      expect(s.receiver.memory.usedBytes).toBeLessThanOrEqual(s.receiver.memory.limitBytes)
      expect(s.receiver.memory.fetches.usedBytes).toBeLessThanOrEqual(s.receiver.memory.fetches.limitBytes)
      expect(s.sender.serving.contents).toBe(1)
      expect(s.sender.serving.peers).toBe(1)
      expect(s.sender.serving.leasedBytes).toBeLessThanOrEqual(s.sender.memory.usedBytes)
      expect(s.sender.network.admission.inbound).toBeGreaterThanOrEqual(1)
    }

    const after = r.stats()
    expect(after.transfers).toEqual({ unfinished: 0, active: 0, queued: 0 })
    expect(after.memory.workBytes).toBe(0)
    expect(after.memory.fetches.usedBytes).toBe(0)
    expect(after.memory.peakBytes).toBeGreaterThan(0)
    expect(after.memory.buffers.hits + after.memory.buffers.misses).toBeGreaterThan(0)
    // The stream stays open for the next fetch from this sender.
    expect(after.network.streamsOpened).toBe(1)
    expect(after.sessions.idle).toBe(1)
    expect(after.network.openStreams).toBe(1)
    await expect.poll(() => sender.stats().memory.workBytes, { timeout: 5000 }).toBe(0)

    // A second fetch takes the kept session instead of opening a stream.
    await r.fetch(ticket, join(engines.dir, 'two.out')).result
    expect(r.stats().network.streamsOpened).toBe(1)

    // Once the receiver is gone, the sender serves nobody; stats() still answers after stop().
    await r.stop()
    expect(r.stats().transfers.unfinished).toBe(0)
    expect(r.stats().network.openStreams).toBe(0)
    await expect.poll(() => sender.stats().serving.peers, { timeout: 5000 }).toBe(0)
    expect(sender.stats().serving.leasedBytes).toBe(0)
  })

  it('zstd chunks: the receiver decodes into recycled buffers; the sender frees each payload once sent', async () => {
    const zstdSender = await engines.engine({
      codec: 'zstd',
      chunking: { kind: 'fixed', size: 64 * KiB },
      // Off: the cache keeps payloads for other receivers, and never gives them up to be freed.
      serveCacheBytes: 0,
    })
    const text = join(engines.dir, 'text.src')
    await writeFile(text, 2 * MiB, 'text')
    const chunks = (2 * MiB) / (64 * KiB)
    const published = await zstdSender.publish(text)
    const r = await receiver()
    await r.fetch(published.ticket, join(engines.dir, 'text.out')).result
    expect(await sha256File(join(engines.dir, 'text.out'))).toBe(await sha256File(text))
    // Each chunk takes two recycled buffers: one its payload arrives in, one it decodes into.
    const taken = r.stats().memory.buffers
    expect(taken.hits + taken.misses).toBe(2 * chunks)
    // The sender's compressed payloads are freed once libp2p has encrypted them.
    await expect
      .poll(() => zstdSender.stats().memory.buffers.freed, { timeout: 5000 })
      .toBeGreaterThanOrEqual(chunks)
  })

  it('with maxActiveTransfers 1, a second fetch waits in the queue while the first runs', async () => {
    const r = await receiver({ maxActiveTransfers: 1 })
    const first: EngineStats[] = []
    const a = r.fetch(ticket, join(engines.dir, 'q1.out'), { onProgress: () => first.push(r.stats()) })
    const b = r.fetch(ticket, join(engines.dir, 'q2.out'))
    expect(r.stats().transfers.unfinished).toBe(2)
    await Promise.all([a.result, b.result])
    expect(first.length).toBeGreaterThanOrEqual(2)
    for (const s of first) expect(s.transfers).toEqual({ unfinished: 2, active: 1, queued: 1 })
    expect(r.stats().transfers).toEqual({ unfinished: 0, active: 0, queued: 0 })
  })

  it('a fetch that fails once admitted, before its job runs, gives its place back: the next fetch from that peer runs', async () => {
    // One place per peer, as a line that failed links shrank to its minimum has: a place kept by
    // such a fetch would leave every later fetch from the sender queued for good.
    const r = await receiver({ maxActiveTransfersPerPeer: 1 })
    // The options are checked before admission now; a fault at the first step after it (the
    // download flow) stands for any throw there.
    const flow = vi.spyOn(FairQueue.prototype, 'flow')
    try {
      for (let i = 0; i < 2; i++) {
        flow.mockImplementationOnce(() => {
          throw new InternalError('a fault after admission')
        })
        const h = r.fetch(ticket, join(engines.dir, `refused${i}.out`))
        await expect(h.result).rejects.toMatchObject({ code: 'INTERNAL' })
        expect(h.status()).toBe('failed')
        expect(r.stats().transfers).toEqual({ unfinished: 0, active: 0, queued: 0 })
      }
    } finally {
      flow.mockRestore()
    }
    const next = r.fetch(ticket, join(engines.dir, 'after-refused.out'))
    const outcome = await Promise.race([
      next.result.then(() => 'done'),
      new Promise((resolve) =>
        setTimeout(() => resolve(`still ${next.status()} after 20 s`), 20_000).unref(),
      ),
    ])
    expect(outcome).toBe('done')
    expect(await sha256File(join(engines.dir, 'after-refused.out'))).toBe(await sha256File(src))
    expect(r.stats().transfers).toEqual({ unfinished: 0, active: 0, queued: 0 })
  })
})
