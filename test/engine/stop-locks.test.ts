/**
 * `stop()` waits for each fetch to give its destination's lock back, in both thread modes: an
 * engine thread ends right after stop, and a lock given back later is never given back there
 * (a later fetch into that destination in this process was DESTINATION_BUSY, "being written
 * by process <its own pid>"). Real engines on loopback, real files.
 */
import { readdirSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type EngineApi, type EngineOptions } from '../../src/index.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** Enough fetches at once that many are taking their lock when stop comes. */
const FETCHES = 400

const locksIn = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.part.lock'))

describe('stop() with fetches taking and holding their locks (real engines, loopback)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: EngineApi
  let ticket: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await createEngine({ listen: LOOPBACK, workers: 1 })
    const src = join(dir, 'small.src')
    await writeFile(src, 1000, 'random')
    ;({ ticket } = await sender.publish(src))
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  for (const thread of ['main', 'worker'] as const) {
    it(`${thread} thread: no <dest>.part.lock of its fetches is left once stop() resolves`, async () => {
      const out = join(dir, `out-${thread}`)
      await mkdir(out)
      const options: EngineOptions = {
        thread,
        listen: LOOPBACK,
        workers: 1,
        maxActiveTransfers: FETCHES,
        maxActiveTransfersPerPeer: FETCHES,
      }
      const engine = await createEngine(options)
      const handles = Array.from({ length: FETCHES }, (_, i) => engine.fetch(ticket, join(out, `f${i}.bin`)))
      // Stopped while fetches are taking their locks (the first one is there).
      await eventually(() => locksIn(out).length > 0, 'a fetch holding its lock')
      await engine.stop()
      expect(locksIn(out)).toEqual([])
      const results = await Promise.allSettled(handles.map((h) => h.result))
      expect(results.some((r) => r.status === 'rejected')).toBe(true)
      // A new engine in this process fetches into every one of them.
      const next = await createEngine({ thread, listen: LOOPBACK, workers: 1 })
      try {
        const again = await Promise.allSettled(
          handles.map((_, i) => next.fetch(ticket, join(out, `f${i}.bin`), { overwrite: true }).result),
        )
        expect(
          again
            .filter((r) => r.status === 'rejected')
            .map((r) => String((r as PromiseRejectedResult).reason)),
        ).toEqual([])
      } finally {
        await next.stop()
      }
    }, 60_000)
  }
})
