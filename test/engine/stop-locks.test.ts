/**
 * `stop()` waits for each fetch to give its destination's lock back, in both thread modes: an
 * engine thread ends right after stop, and a lock given back later is never given back there
 * (a later fetch into that destination in this process was DESTINATION_BUSY, "being written
 * by process <its own pid>"). Real engines on loopback, real files.
 */
import { existsSync, readdirSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STAGING_NAME } from '../../src/collection/names.ts'
import { AbortedError, createEngine, type EngineApi, type EngineOptions } from '../../src/index.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** Enough fetches at once that many are taking their lock when stop comes. */
const FETCHES = 400
/** A folder's file big enough that reading an earlier copy of it is under way when stop comes. */
const BIG = 256 * 1024 * 1024

const locksIn = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.part.lock'))

describe('stop() with fetches taking and holding their locks (real engines, loopback)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: EngineApi
  let ticket: string
  let folderTicket: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await createEngine({ listen: LOOPBACK, workers: 1 })
    const src = join(dir, 'small.src')
    await writeFile(src, 1000, 'random')
    ;({ ticket } = await sender.publish(src))
    const folder = join(dir, 'folder')
    await mkdir(folder)
    await writeFile(join(folder, 'a.bin'), BIG, 'random', 3)
    ;({ ticket: folderTicket } = await sender.publishCollection(folder))
  }, 60_000)
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

    it(`${thread} thread: a folder's fetch still reading an earlier copy is ended, its lock given back`, async () => {
      const into = join(dir, `folder-${thread}`)
      await mkdir(into)
      // An earlier copy whose file differs: fetched over it (overwrite), it is read first.
      await writeFile(join(into, 'a.bin'), BIG, 'random', 7)
      const engine = await createEngine({ thread, listen: LOOPBACK, workers: 1 })
      let reading!: () => void
      const read = new Promise<void>((resolve) => {
        reading = resolve
      })
      const fetching = engine.fetchCollection(folderTicket, into, {
        overwrite: true,
        onProgress: (p) => {
          if (p.phase === 'reading') reading()
        },
      })
      fetching.catch(() => {})
      await read
      const lock = join(into, STAGING_NAME, 'collection.part.lock')
      expect(existsSync(lock)).toBe(true)
      await engine.stop()
      expect(existsSync(lock)).toBe(false)
      await expect(fetching).rejects.toThrow(AbortedError)
    }, 60_000)
  }
})
