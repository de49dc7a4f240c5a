import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkUnavailableError, type EngineOptions, NoProviderError } from '../../src/index.ts'
import type { FrameStream } from '../../src/net/stream-io.ts'
import { decodeSwarmTicket, joinTickets } from '../../src/ticket/multi-ticket.ts'
import { spawnPeer } from '../support/children.ts'
import { useEngines } from '../support/engines.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { chunkIndexOf, corrupting, startSender } from '../support/sender.ts'
import { writePartialCopy } from './partial-copy.ts'

const KiB = 1024
const MiB = 1024 * KiB
const CHUNK = 64 * KiB
const chunking = { kind: 'fixed', size: CHUNK } as const
const SIZE = 4 * MiB // 64 chunks
/** A receiver with a small window, so every seeder gets a share of a small file. */
const receiverOptions: EngineOptions = {
  workers: 1,
  memoryBudget: 8 * MiB,
  fetch: { windowBytes: MiB },
  swarm: { haveIntervalMs: 200 },
}

function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (!cond()) return
      clearInterval(t)
      resolve()
    }, 20)
  })
}

describe('multi-peer fetch between real engines', () => {
  const engines = useEngines({ workers: 1, chunking })
  const engine = engines.engine
  let file: string
  let digest: string
  /** The seeders that are not engines: stopped before the engines and the temporary folder go. */
  const stops: Array<() => Promise<void>> = []

  beforeAll(async () => {
    file = join(engines.dir, 'source.bin')
    await writeFile(file, SIZE, 'random')
    digest = await sha256File(file)
  })
  afterAll(async () => {
    await Promise.allSettled(stops.map((s) => s()))
  })

  it('four seeders, one corrupting every chunk: completes verified, the corrupting peer is dropped', async () => {
    const bad = corrupting(() => true)
    const liar = await startSender({ chunking, wrap: bad })
    stops.push(() => liar.stop())
    const tickets = [await liar.publish(file)]
    for (let i = 0; i < 3; i++) tickets.push((await (await engine()).publish(file)).ticket)
    const receiver = await engine(receiverOptions)
    const dest = join(engines.dir, 'four.out')
    const r = await receiver.fetch(joinTickets(tickets), dest).result
    expect(await sha256File(dest)).toBe(digest)
    expect(r.bytes).toBe(SIZE)
    const stats = r.swarm!
    const liarStats = stats.peers.find((p) => p.peerId === liar.network.peerId)!
    expect(liarStats.out).toBe('CHUNK_VERIFICATION_FAILED')
    expect(liarStats.verifiedBytes).toBe(0)
    expect(bad.stats.corrupted).toBeGreaterThanOrEqual(3)
    expect(stats.corruptChunks).toBeGreaterThanOrEqual(3)
    const honest = stats.peers.filter((p) => p.peerId !== liar.network.peerId)
    expect(honest.reduce((n, p) => n + p.verifiedBytes, 0)).toBe(SIZE)
    expect(honest.filter((p) => p.verifiedBytes > 0).length).toBeGreaterThanOrEqual(2)
    expect(honest.every((p) => p.out === undefined)).toBe(true)
  })

  it('a stalled seeder loses its requests to the others', async () => {
    // Answers hello, header, pages and have, but never sends a chunk frame.
    const stalling = (stream: FrameStream): FrameStream =>
      new Proxy(stream, {
        get(target, prop, receiver) {
          if (prop === 'write') {
            return (parts: readonly Uint8Array[], o?: { signal?: AbortSignal }) =>
              chunkIndexOf(parts) === undefined ? target.write(parts, o) : new Promise<void>(() => {})
          }
          const v = Reflect.get(target, prop, receiver)
          return typeof v === 'function' ? v.bind(target) : v
        },
      })
    const staller = await startSender({ chunking, wrap: stalling })
    stops.push(() => staller.stop())
    const tickets = [await staller.publish(file)]
    for (let i = 0; i < 2; i++) tickets.push((await (await engine()).publish(file)).ticket)
    // Endgame off: the staller's chunks come back only through the request timeout.
    const receiver = await engine({
      ...receiverOptions,
      timeouts: { requestMs: 1000 },
      swarm: { endgamePeers: 1 },
    })
    const dest = join(engines.dir, 'stalled.out')
    const r = await receiver.fetch(joinTickets(tickets), dest).result
    expect(await sha256File(dest)).toBe(digest)
    const s = r.swarm!.peers.find((p) => p.peerId === staller.network.peerId)!
    expect(s.verifiedBytes).toBe(0)
    expect(s.stalls).toBeGreaterThanOrEqual(1)
  })

  it('a seeder killed mid-transfer: completes from the others', async () => {
    // Each seeder uploads at most 1 MiB/s, so the transfer takes a few seconds and the kill lands in it.
    const limits = { uploadBytesPerSec: MiB }
    const child = spawnPeer({ mode: 'send', file, engine: { chunking, limits } })
    stops.push(async () => {
      child.proc.kill('SIGKILL')
      await child.exited
    })
    const published = await child.waitFor((e) => e.event === 'published', 'published')
    const tickets = [published.ticket as string]
    for (let i = 0; i < 2; i++) tickets.push((await (await engine({ limits })).publish(file)).ticket)
    const receiver = await engine(receiverOptions)
    const dest = join(engines.dir, 'killed.out')
    let doneAtKill: number | undefined
    const handle = receiver.fetch(joinTickets(tickets), dest, {
      onProgress: (p) => {
        const fromChild = handle?.swarmStats()?.peers.find((q) => q.peerId === published.peerId)
        if (doneAtKill === undefined && p.bytesDone >= SIZE / 4 && (fromChild?.verifiedBytes ?? 0) > 0) {
          doneAtKill = p.bytesDone
          child.proc.kill('SIGKILL')
        }
      },
    })
    const r = await handle.result
    expect((await child.exited).signal).toBe('SIGKILL')
    expect(doneAtKill).toBeDefined()
    expect(doneAtKill!).toBeLessThan(SIZE)
    expect(await sha256File(dest)).toBe(digest)
    const killed = r.swarm!.peers.find((p) => p.peerId === published.peerId)!
    expect(killed.verifiedBytes).toBeGreaterThan(0)
    expect(killed.verifiedBytes).toBeLessThan(SIZE)
    expect(r.swarm!.peers.reduce((n, p) => n + p.verifiedBytes, 0)).toBe(SIZE)
  })

  it('two partial seeders that together hold everything (neither alone): completes', async () => {
    const full = await engine()
    const { index } = await full.publish(file)
    const halves = [0, 1].map((k) => join(engines.dir, `half-${k}.bin`))
    for (const [k, dest] of halves.entries()) {
      await writePartialCopy(file, index, dest, (i) => i % 2 === k)
    }
    await full.stop()
    const seeders = [await engine(), await engine()]
    const seeded = await Promise.all(seeders.map((s, k) => s.seed(halves[k]!)))
    expect(seeded.map((s) => s.chunks)).toEqual([32, 32])
    const receiver = await engine(receiverOptions)
    const dest = join(engines.dir, 'halves.out')
    const r = await receiver.fetch(joinTickets(seeded.map((s) => s.ticket)), dest).result
    expect(await sha256File(dest)).toBe(digest)
    // Each half came from the one peer that had it.
    const got = seeders.map((s) => r.swarm!.peers.find((p) => p.peerId === s.peerId)!.verifiedBytes)
    expect(got).toEqual([SIZE / 2, SIZE / 2])

    // One half alone cannot finish: a typed NO_PROVIDER after waitForChunkMs, not a hang.
    const lonely = await engine({ ...receiverOptions, swarm: { waitForChunkMs: 500 } })
    const err = await lonely
      .fetch(seeded[0]!.ticket, join(engines.dir, 'lonely.out'), { swarm: true })
      .result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NoProviderError)
    expect((err as Error).message).toMatch(/chunk 1\b/)
    expect((err as Error).message).toMatch(
      /1 live provider, each holding only part of the content\): .*run the same command again with a ticket of a peer that holds the whole content/,
    )
  })

  it('a partial seeder answers get-have with its bitmap and refuses chunks it lacks with CHUNK_UNAVAILABLE', async () => {
    const full = await engine()
    const { index } = await full.publish(file)
    const half = join(engines.dir, 'probe.bin')
    await writePartialCopy(file, index, half, (i) => i < 10)
    await full.stop()
    const seeder = await engine()
    const { ticket } = await seeder.seed(half)
    // Its ticket names the file, so a receiver of it gets it under that name.
    expect(decodeSwarmTicket(ticket).name).toBe('probe.bin')
    const asker = await engine()
    const { probe } = await import('./partial-copy.ts')
    const { have, missing, present } = await probe(asker, ticket, index.header.leafCount)
    expect(have).toEqual(Array.from({ length: 64 }, (_, i) => i < 10))
    expect(missing).toBeInstanceOf(ChunkUnavailableError)
    expect(present).toBe(true)
  })

  it('a provider added to a running transfer is used', async () => {
    const slow = await engine({ limits: { uploadBytesPerSec: MiB } })
    const fast = await engine()
    const { ticket } = await slow.publish(file)
    // Each publish has its own secret: the provider added is the one fast's ticket names.
    const fastProvider = decodeSwarmTicket((await fast.publish(file)).ticket).providers[0]!
    expect(fastProvider.secret).toBeDefined()
    const receiver = await engine(receiverOptions)
    const dest = join(engines.dir, 'joined.out')
    const h = receiver.fetch(ticket, dest, { swarm: true })
    await until(() => (h.progress()?.bytesDone ?? 0) > 0)
    h.addProvider(fastProvider)
    const r = await h.result
    expect(await sha256File(dest)).toBe(digest)
    const peers = r.swarm!.peers
    expect(peers.map((p) => p.peerId)).toEqual([slow.peerId, fast.peerId])
    expect(peers[1]!.verifiedBytes).toBeGreaterThan(0)
    expect(peers[0]!.verifiedBytes + peers[1]!.verifiedBytes).toBe(SIZE)
    // Every fetch takes providers: one started from a one-peer ticket without { swarm } too.
    const single = receiver.fetch(ticket, join(engines.dir, 'single.out'))
    single.addProvider(fastProvider)
    const s = await single.result
    expect(s.swarm!.peers.map((p) => p.peerId)).toEqual([slow.peerId, fast.peerId])
    expect(await sha256File(join(engines.dir, 'single.out'))).toBe(digest)
  })

  it('a peer that is downloading serves what it has verified to others', async () => {
    const limits = { uploadBytesPerSec: 2 * MiB }
    const seed = await engine({ limits })
    const { ticket } = await seed.publish(file)
    const first = await engine(receiverOptions)
    const firstDest = join(engines.dir, 'first.out')
    const h1 = first.fetch(ticket, firstDest, { swarm: true })
    // Once the first receiver holds some chunks, a second one fetches from both.
    await until(() => (h1.progress()?.bytesDone ?? 0) >= SIZE / 4)
    expect(h1.progress()!.bytesDone).toBeLessThan(SIZE)
    const second = await engine(receiverOptions)
    const dest = join(engines.dir, 'second.out')
    const r2 = await second.fetch(ticket, dest, {
      providers: [{ peerId: first.peerId, addrs: first.addresses }],
    }).result
    await h1.result
    expect(await sha256File(dest)).toBe(digest)
    expect(await sha256File(firstDest)).toBe(digest)
    const fromFirst = r2.swarm!.peers.find((p) => p.peerId === first.peerId)!
    expect(fromFirst.verifiedBytes).toBeGreaterThan(0)
  })
})
