import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DestinationLock } from '../../src/storage/dest-lock.ts'
import { useEngines } from '../support/engines.ts'
import { failure } from '../support/errors.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { writePartialCopy } from './partial-copy.ts'

const MiB = 1024 * 1024

// A seed serves `<dest>.part`; a fetch writes it and renames it away. They used to ignore each
// other: one owner per destination now, through the lock a fetch takes.
describe('a seed holds its destination as a fetch does', () => {
  const engines = useEngines({ listen: ['/ip4/127.0.0.1/tcp/0'], workers: 1 })

  it('a fetch into what a seed serves is DESTINATION_BUSY naming the seed, or waits for it to stop; a seed of what a fetch writes is refused', async () => {
    const src = join(engines.dir, 'data.bin')
    await writeFile(src, 4 * MiB, 'random')
    const sender = await engines.engine()
    const sent = await sender.publish(src)
    const dest = join(engines.dir, 'half.bin')
    await writePartialCopy(src, sent.index, dest, (i) => i % 2 === 0)

    const seeder = await engines.engine()
    const seeded = await seeder.seed(dest)
    const receiver = await engines.engine()
    const busy = await failure(receiver.fetch(sent.ticket, dest).result)
    expect(busy.code).toBe('DESTINATION_BUSY')
    expect(busy.message).toContain(`half.bin.part is being seeded by process ${process.pid} (since`)
    // A second seed of it, here or in another engine, is refused the same way.
    expect(await failure(receiver.seed(dest))).toMatchObject({
      code: 'DESTINATION_BUSY',
      message: expect.stringContaining('is already being seeded by'),
    })

    let told: string | undefined
    const waiting = receiver.fetch(sent.ticket, dest, { waitIfBusy: true, onWait: (h) => (told = h) })
    await expect.poll(() => told).toMatch(/seeding it/)
    seeder.unpublish(seeded.cid)
    const r = await waiting.result
    expect(r.resume.chunksKept).toBe(2)
    expect(await sha256File(dest)).toBe(await sha256File(src))

    // The other way round: a fetch's lock (a haul get running) refuses the seed, naming the fetch.
    const other = join(engines.dir, 'other.bin')
    await writePartialCopy(src, sent.index, other, (i) => i < 2)
    const lock = await DestinationLock.acquire(other)
    try {
      expect(await failure(seeder.seed(other))).toMatchObject({
        code: 'DESTINATION_BUSY',
        message: expect.stringMatching(/other\.bin is being written by process \d+ .*, a fetch/),
      })
    } finally {
      await lock.release()
    }
  })

  it("stop gives the seed's lock back", async () => {
    const src = join(engines.dir, 'stop.bin')
    await writeFile(src, 2 * MiB, 'random')
    const sender = await engines.engine()
    const sent = await sender.publish(src)
    const dest = join(engines.dir, 'stop-half.bin')
    await writePartialCopy(src, sent.index, dest, (i) => i === 0)
    const seeder = await engines.engine()
    await seeder.seed(dest)
    expect(existsSync(`${dest}.part.lock`)).toBe(true)
    await seeder.stop()
    expect(existsSync(`${dest}.part.lock`)).toBe(false)
  })
})
