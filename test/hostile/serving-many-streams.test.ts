/**
 * One peer opens its 64 streams at once and asks each for the whole file, reading everything:
 * the sender's chunks then wait in its Noise queue, inside the memory budget, instead of piling
 * up as ciphertext in the TCP connection's queue, which no budget counts (noise-stream.ts, 3.).
 * Measured with the engine's own count of that queue (`network.socketQueuedBytes`), not RSS,
 * which also carries garbage not yet collected.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'
import { AttackClient, askFor, type Target, targetOf, type Watched } from './support/serving-attack.ts'

const MiB = 1024 * 1024
const STREAMS = 64
const CHUNKS = 8

/** Per connection: one Noise batch (NOISE_SEND_BATCH_BYTES, 1.0625 MiB) and what the socket holds past its high-water mark. */
const QUEUE_BOUND = 2 * MiB

describe('one peer, 64 streams, each reading the whole file', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let attacker: AttackClient
  let target: Target

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const src = join(dir, 'src.bin')
    await writeFile(src, CHUNKS * MiB, 'random')
    sender = await Engine.create({ workers: 1, listen: ['/ip4/127.0.0.1/tcp/0'] })
    target = targetOf((await sender.publish(src)).ticket)
    attacker = await AttackClient.create({ maxStreamsPerPeer: STREAMS })
  })
  afterAll(async () => {
    await attacker?.stop()
    await sender?.stop()
    await cleanup()
  })

  it(`keeps the sender's TCP queue within ${QUEUE_BOUND / MiB} MiB and its budget within memoryBudget, and serves every chunk`, async () => {
    const ask = askFor(target, CHUNKS)
    let queuedPeak = 0
    let budgetPeak = 0
    const sample = (): void => {
      const s = sender.stats()
      queuedPeak = Math.max(queuedPeak, s.network.socketQueuedBytes)
      budgetPeak = Math.max(budgetPeak, s.memory.usedBytes)
    }
    const sampler = setInterval(sample, 5)
    let watched: Watched[]
    try {
      const all = await Promise.all(Array.from({ length: STREAMS }, () => attacker.send(target, ask)))
      watched = all
      const answered = (w: Watched): boolean =>
        w.endedAt !== undefined || w.replies.some((m) => m.type === 'end')
      await eventually(() => all.every(answered), 'every stream answered whole', 110_000)
    } finally {
      clearInterval(sampler)
    }
    for (const w of watched) expect(w.replies.filter((m) => m.type === 'chunk')).toHaveLength(CHUNKS)
    expect(budgetPeak).toBeLessThanOrEqual(sender.stats().memory.limitBytes)
    // Without the bound: ~40-150 MB here, all of it waiting for one socket.
    expect(queuedPeak).toBeLessThanOrEqual(QUEUE_BOUND)
    expect(queuedPeak).toBeGreaterThan(0)
  }, 120_000)
})
