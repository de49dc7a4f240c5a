import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Engine, type EngineOptions, type FetchResult } from '../../src/index.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024

const stops: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()))
})

async function engines(n: number, opts: EngineOptions = { workers: 1 }): Promise<Engine[]> {
  const out = await Promise.all(Array.from({ length: n }, () => Engine.create(opts)))
  stops.push(async () => {
    await Promise.all(out.map((e) => e.stop()))
  })
  return out
}

async function folder(): Promise<string> {
  const t = await tempDir('haul-mesh-')
  stops.push(t.cleanup)
  return t.dir
}

describe('peers that fetch from each other', () => {
  it('two engines each run 100 fetches from the other at once: all complete byte-identical, none stalls into a retry', async () => {
    const dir = await folder()
    // The smallest budget (4 chunks) fills with fetch windows at once.
    const [a, b] = await engines(2, { workers: 1, memoryBudget: 4 * MiB })
    const files = { a: join(dir, 'a.bin'), b: join(dir, 'b.bin') }
    await writeFile(files.a, 3 * MiB + 4321, 'random', 1)
    await writeFile(files.b, 2 * MiB + 17, 'random', 2)
    const ta = (await a!.publish(files.a)).ticket
    const tb = (await b!.publish(files.b)).ticket
    const runs: Array<Promise<FetchResult>> = []
    for (let i = 0; i < 100; i++) {
      runs.push(a!.fetch(tb, join(dir, `from-b-${i}`)).result)
      runs.push(b!.fetch(ta, join(dir, `from-a-${i}`)).result)
    }
    const results = await Promise.all(runs)
    expect(results).toHaveLength(200)
    // A stall (two servers each waiting for memory the other side's fetches hold) would end only
    // at the stream idle timeout, as a retry.
    expect(results.filter((r) => r.retries > 0)).toEqual([])
    const want = { a: await sha256File(files.a), b: await sha256File(files.b) }
    for (let i = 0; i < 100; i += 9) {
      expect(await sha256File(join(dir, `from-b-${i}`))).toBe(want.b)
      expect(await sha256File(join(dir, `from-a-${i}`))).toBe(want.a)
    }
  }, 120_000)

  it('simultaneous dial: two fresh engines start a fetch from each other at the same instant, 15 times; every fetch completes without a retry', async () => {
    const dir = await folder()
    // One copy each: without a data folder a publish writes its descriptor beside the file.
    const copies = [join(dir, 'a.bin'), join(dir, 'b.bin')]
    await writeFile(copies[0]!, 600_000, 'random')
    await copyFile(copies[0]!, copies[1]!)
    const want = await sha256File(copies[0]!)
    for (let round = 0; round < 15; round++) {
      const [a, b] = await engines(2)
      const [ta, tb] = await Promise.all([a!.publish(copies[0]!), b!.publish(copies[1]!)])
      const [ra, rb] = await Promise.all([
        a!.fetch(tb.ticket, join(dir, `a-${round}`)).result,
        b!.fetch(ta.ticket, join(dir, `b-${round}`)).result,
      ])
      expect(ra.retries).toBe(0)
      expect(rb.retries).toBe(0)
      expect(await sha256File(join(dir, `a-${round}`))).toBe(want)
      expect(await sha256File(join(dir, `b-${round}`))).toBe(want)
      await Promise.all([a!.stop(), b!.stop()])
    }
  }, 120_000)

  it('a peer over its inbound stream limit is refused with TOO_MANY_REQUESTS, retried, and every fetch completes', async () => {
    const dir = await folder()
    const [sender] = await engines(1, { workers: 1, network: { maxInboundStreamsPerPeer: 2 } })
    const [receiver] = await engines(1, {
      workers: 1,
      maxActiveTransfersPerPeer: 6,
      sessions: { maxIdle: 0 },
      retry: { baseDelayMs: 20, maxDelayMs: 200 },
    })
    const file = join(dir, 'f.bin')
    await writeFile(file, 3 * MiB, 'random')
    const { ticket } = await sender!.publish(file)
    const codes: string[] = []
    const results = await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) =>
          receiver!.fetch(ticket, join(dir, `out-${i}`), { onRetry: (r) => codes.push(r.error.code) }).result,
      ),
    )
    expect(results).toHaveLength(12)
    expect(codes.length).toBeGreaterThan(0)
    expect(new Set(codes)).toEqual(new Set(['TOO_MANY_REQUESTS']))
    const want = await sha256File(file)
    for (let i = 0; i < 12; i += 5) expect(await sha256File(join(dir, `out-${i}`))).toBe(want)
  }, 120_000)
})
