import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createEngine } from '../../src/index.ts'
import { writePartialCopy } from '../fetch/partial-copy.ts'
import { sha256File } from '../support/files.ts'
import { events, run, useSentFile } from './run.ts'

const MiB = 1024 * 1024
/** Above journal.minBytes, so an interrupted fetch keeps a journal. */
const SIZE = 8 * MiB

describe('haul get resumes, haul seed serves a partial copy (real processes)', () => {
  const sent = useSentFile(SIZE)
  const { start } = sent

  /** A `haul get` slowed down and interrupted by Ctrl-C once some of the file is here: exit 130. */
  async function interruptedGet(dest: string): Promise<void> {
    const get = start(['get', sent.ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= MiB)
    expect(await get.stop('SIGINT')).toBe(130)
    expect(get.events.at(-1)).toMatchObject({ event: 'interrupted', path: dest })
    expect(existsSync(`${dest}.part`)).toBe(true)
  }

  it('run again, get says at once what it resumes, and its rate counts only what this run fetched', async () => {
    const dest = join(sent.dir, 'resumed.bin')
    await interruptedGet(dest)
    const r = await run(['get', sent.ticket, '-o', dest, '--priority', 'high', '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const evs = events(r.stdout)
    // The announcement comes before any progress.
    expect(evs[0]).toMatchObject({ event: 'resuming', mode: 'journal', totalBytes: SIZE, totalChunks: 8 })
    const kept = evs[0]!.bytesKept as number
    expect(kept).toBeGreaterThanOrEqual(MiB)
    expect(kept).toBeLessThan(SIZE)
    const done = evs.at(-1)!
    expect(done).toMatchObject({ event: 'done', bytes: SIZE, fetchedBytes: SIZE - kept })
    expect((done.rate as number) * (done.seconds as number)).toBeCloseTo(SIZE - kept, 0)
    expect(await sha256File(dest)).toBe(sent.digest)
  })

  it('human output: the resume line first, the summary with what this run fetched', async () => {
    const dest = join(sent.dir, 'resumed-human.bin')
    await interruptedGet(dest)
    // A part file from a fetch from one peer has no leaf pages to seed from.
    const seed = await run(['seed', `${dest}.part`])
    expect(seed.code).toBe(1)
    expect(seed.stderr).toMatch(
      /error \[SOURCE_INVALID\]: .*no leaf pages.*Finish the fetch \(run the same haul get again\)/,
    )
    const r = await run(['get', sent.ticket, '-o', dest, '--max-rate', '64M'])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^resuming: \d+\.\d MiB of 8\.0 MiB already here, verified \(\d of 8 chunks\)$/)
    expect(lines.at(-1)).toMatch(
      /^received .*resumed-human\.bin: 8\.0 MiB in 8 chunks, every chunk verified; fetched \d+\.\d MiB in \d+:\d\d at \d+\.\d MiB\/s( \(\d+:\d\d since haul get started\))?$/,
    )
  })

  it('haul seed serves the chunks a part file holds: a get from it and the sender completes; a whole file is published', async () => {
    const engine = await createEngine({ workers: 1 })
    const half = join(sent.dir, 'half.bin')
    try {
      const { index } = await engine.publish(sent.src)
      await writePartialCopy(sent.src, index, half, (i) => i % 2 === 0)
    } finally {
      await engine.stop()
    }
    const seeder = start(['seed', `${half}.part`, '--json'])
    const seeding = await seeder.event('seeding')
    expect(seeding).toMatchObject({ path: `${half}.part`, chunks: 4, totalChunks: 8 })
    const dest = join(sent.dir, 'from-both.bin')
    const r = await run(['get', seeding.ticket as string, sent.ticket, '-o', dest, '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(await sha256File(dest)).toBe(sent.digest)
    const started = await seeder.event('transfer-started')
    expect(started).toMatchObject({ partial: true, path: `${half}.part`, totalBytes: SIZE })
    expect(await seeder.stop('SIGINT')).toBe(0)
    expect(seeder.events.at(-1)).toMatchObject({ event: 'stopped', peers: 1 })

    const whole = start(['seed', sent.src, '--json'])
    expect(await whole.event('published')).toMatchObject({ path: sent.src, bytes: SIZE, chunks: 8 })
    expect(await whole.stop('SIGTERM')).toBe(0)
  })

  it('haul seed holds its destination: a get into it is DESTINATION_BUSY naming the seed or waits (--wait) until Ctrl-C ends it; a kill -9 one is taken over', async () => {
    const engine = await createEngine({ workers: 1 })
    const held = join(sent.dir, 'held.bin')
    const killed = join(sent.dir, 'killed.bin')
    try {
      const { index } = await engine.publish(sent.src)
      await writePartialCopy(sent.src, index, held, (i) => i % 2 === 0)
      await writePartialCopy(sent.src, index, killed, (i) => i < 3)
    } finally {
      await engine.stop()
    }
    const seeder = start(['seed', `${held}.part`, '--json'])
    await seeder.event('seeding')
    const pid = seeder.proc.pid!
    const busy = await run(['get', sent.ticket, '-o', held, '--json'])
    expect(busy.code, busy.stderr).toBe(1)
    expect(events(busy.stdout).at(-1)).toMatchObject({
      event: 'error',
      code: 'DESTINATION_BUSY',
      message: expect.stringContaining(`held.bin.part is being seeded by process ${pid} (since`),
    })
    const waiting = start(['get', sent.ticket, '-o', held, '--wait'])
    await waiting.line(new RegExp(`^waiting: .*held\\.bin is being written by process ${pid} \\(seeding it`))
    expect(await seeder.stop('SIGINT')).toBe(0)
    expect(await waiting.exited, waiting.stderr).toBe(0)
    expect(await sha256File(held)).toBe(sent.digest)

    const dead = start(['seed', `${killed}.part`, '--json'])
    await dead.event('seeding')
    expect(await dead.stop('SIGKILL')).toBe(137)
    expect(existsSync(`${killed}.part.lock`)).toBe(true)
    const r = await run(['get', sent.ticket, '-o', killed, '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(await sha256File(killed)).toBe(sent.digest)
  })
})
