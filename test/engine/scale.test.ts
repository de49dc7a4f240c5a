import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const KiB = 1024
const MiB = 1024 * KiB

describe('many transfers in one engine', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('admission: 40 fetches from one peer with 4 active at a time all complete, never more than 4 streams', async () => {
    const sender = await Engine.create({ workers: 1, chunking: { kind: 'fixed', size: 64 * KiB } })
    const receiver = await Engine.create({ workers: 1, maxActiveTransfersPerPeer: 4 })
    try {
      const tickets: Array<{ ticket: string; src: string }> = []
      for (let i = 0; i < 8; i++) {
        const src = join(dir, `a${i}.src`)
        await writeFile(src, 300 * KiB + i, 'random', i)
        tickets.push({ ticket: (await sender.publish(src)).ticket, src })
      }
      let maxStreams = 0
      const timer = setInterval(
        () => (maxStreams = Math.max(maxStreams, receiver.network.openStreamCount())),
        2,
      )
      const handles = Array.from({ length: 40 }, (_, i) =>
        receiver.fetch(tickets[i % 8]!.ticket, join(dir, `a${i}.out`)),
      )
      const results = await Promise.all(handles.map((h) => h.result))
      clearInterval(timer)
      expect(results.every((r) => r.retries === 0)).toBe(true)
      expect(maxStreams).toBeGreaterThan(0)
      expect(maxStreams).toBeLessThanOrEqual(4)
      for (let i = 0; i < 40; i += 13) {
        expect(await sha256File(join(dir, `a${i}.out`))).toBe(await sha256File(tickets[i % 8]!.src))
      }
      expect(receiver.budget.used).toBe(receiver.idleBufferBytes)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
    }
  })

  it('priorities: under a download limit, high / normal / low share bandwidth 4:2:1 (±10%)', async () => {
    const sender = await Engine.create({ workers: 1, chunking: { kind: 'fixed', size: 64 * KiB } })
    const receiver = await Engine.create({
      workers: 1,
      limits: { downloadBytesPerSec: 6 * MiB, burstBytes: 256 * KiB },
      fetch: { chunksPerRequest: 2 },
    })
    try {
      const size = 64 * MiB // none finishes within the measurement
      const src = join(dir, 'p.src')
      await writeFile(src, size, 'random')
      const { ticket } = await sender.publish(src)
      const ac = new AbortController()
      const handles = (['high', 'normal', 'low'] as const).map((priority) =>
        receiver.fetch(ticket, join(dir, `p-${priority}.out`), { priority, signal: ac.signal }),
      )
      const done = () => handles.map((h) => h.progress()?.bytesDone ?? 0)
      // Measure a window after all three are running, so start-up does not count.
      await new Promise((r) => setTimeout(r, 1500))
      const start = done()
      await new Promise((r) => setTimeout(r, 4000))
      const end = done()
      ac.abort()
      await Promise.allSettled(handles.map((h) => h.result))
      const got = end.map((e, i) => e - start[i]!)
      const total = got.reduce((a, b) => a + b, 0)
      const shares = got.map((g) => g / total)
      expect(shares[0]).toBeCloseTo(4 / 7, 1)
      for (const [i, w] of [4, 2, 1].entries()) {
        expect(
          Math.abs(shares[i]! - w / 7) / (w / 7),
          `shares ${shares.map((x) => x.toFixed(3))}`,
        ).toBeLessThan(0.1)
      }
      // and the global limit holds (±10% over this short window; the rate-limit tests hold ±5% over 10 s)
      expect(total / 4 / (6 * MiB)).toBeGreaterThan(0.9)
      expect(total / 4 / (6 * MiB)).toBeLessThan(1.1)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
    }
  })
})
