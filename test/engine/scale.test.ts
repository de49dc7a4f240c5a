import { mkdir, readdir } from 'node:fs/promises'
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
        () => (maxStreams = Math.max(maxStreams, receiver.stats().network.openStreams)),
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
      expect(receiver.stats().memory.workBytes).toBe(0)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
    }
  })

  it('maxActiveTransfers: 120 fetches from two peers, 5 admitted at once, never more than 5 part files or journals, and 5 open streams plus the idle ones kept', async () => {
    const chunking = { kind: 'fixed' as const, size: 64 * KiB }
    const senders = [
      await Engine.create({ workers: 1, chunking }),
      await Engine.create({ workers: 1, chunking }),
    ]
    // Per peer 4, engine-wide 5: only the engine-wide bound keeps two peers' fetches at 5.
    const receiver = await Engine.create({
      workers: 1,
      maxActiveTransfers: 5,
      maxActiveTransfersPerPeer: 4,
      // Journals for every transfer (default: none up to 4 MiB), so their bound is exercised too.
      journal: { minBytes: 0 },
      // Streams kept open between fetches come on top of the admitted ones.
      sessions: { maxIdle: 2 },
    })
    const out = join(dir, 'bound')
    await mkdir(out)
    try {
      const tickets: Array<{ ticket: string; src: string }> = []
      for (let i = 0; i < 6; i++) {
        const src = join(dir, `b${i}.src`)
        await writeFile(src, 200 * KiB + i * 7000, 'random', 100 + i)
        tickets.push({ ticket: (await senders[i % 2]!.publish(src)).ticket, src })
      }
      const seen = { streams: 0, parts: 0, journals: 0, admitted: 0, queued: 0 }
      let sampling = true
      const sampler = (async () => {
        while (sampling) {
          const names = await readdir(out)
          seen.parts = Math.max(seen.parts, names.filter((n) => n.endsWith('.part')).length)
          seen.journals = Math.max(seen.journals, names.filter((n) => n.endsWith('.journal')).length)
          const { network, transfers } = receiver.stats()
          seen.streams = Math.max(seen.streams, network.openStreams)
          seen.admitted = Math.max(seen.admitted, transfers.active)
          seen.queued = Math.max(seen.queued, transfers.unfinished - transfers.active)
          await new Promise((r) => setImmediate(r))
        }
      })()
      const handles = Array.from({ length: 120 }, (_, i) =>
        receiver.fetch(tickets[i % 6]!.ticket, join(out, `t${i}.out`)),
      )
      // A queued transfer is cheap, but it is a transfer: it reports `resolving` and can be cancelled.
      expect(handles[119]!.status()).toBe('resolving')
      expect(handles[119]!.progress()).toBeUndefined()
      handles[118]!.cancel()
      const settled = await Promise.allSettled(handles.map((h) => h.result))
      sampling = false
      await sampler
      expect(settled[118]!.status).toBe('rejected')
      expect((settled[118] as PromiseRejectedResult).reason.code).toBe('ABORTED')
      expect(handles[118]!.status()).toBe('cancelled')
      const ok = settled.filter((r) => r.status === 'fulfilled')
      expect(ok.length).toBe(119)
      expect(seen.queued).toBeGreaterThan(100)
      expect(seen.admitted).toBe(5)
      expect(seen.streams).toBeGreaterThan(0)
      expect(seen.streams).toBeLessThanOrEqual(5 + 2)
      expect(seen.parts).toBeGreaterThan(0)
      expect(seen.parts).toBeLessThanOrEqual(5)
      expect(seen.journals).toBeGreaterThan(0)
      expect(seen.journals).toBeLessThanOrEqual(5)
      for (let i = 0; i < 120; i += 17) {
        if (i === 118) continue
        expect(await sha256File(join(out, `t${i}.out`))).toBe(await sha256File(tickets[i % 6]!.src))
      }
      const after = receiver.stats()
      expect(after.transfers.unfinished).toBe(0)
      expect(after.transfers.active).toBe(0)
      expect(after.memory.workBytes).toBe(0)
    } finally {
      await Promise.all([...senders.map((s) => s.stop()), receiver.stop()])
    }
  })

  it('stopping the engine fails transfers still waiting for their turn, with ABORTED', async () => {
    const sender = await Engine.create({ workers: 1, chunking: { kind: 'fixed', size: 64 * KiB } })
    const receiver = await Engine.create({ workers: 1, maxActiveTransfers: 1 })
    try {
      const src = join(dir, 's.src')
      await writeFile(src, 4 * MiB, 'random', 7)
      const { ticket } = await sender.publish(src)
      const handles = Array.from({ length: 20 }, (_, i) => receiver.fetch(ticket, join(dir, `s${i}.out`)))
      const all = Promise.allSettled(handles.map((h) => h.result))
      await receiver.stop()
      const settled = await all
      for (const r of settled.slice(1)) {
        expect(r.status).toBe('rejected')
        expect((r as PromiseRejectedResult).reason.code).toBe('ABORTED')
      }
      expect(receiver.stats().transfers.unfinished).toBe(0)
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
