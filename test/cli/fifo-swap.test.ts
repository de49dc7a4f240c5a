import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../support/files.ts'
import { Running } from './run.ts'

/**
 * A served file removed and replaced by a named pipe (FIFO) while its handle was closed (more files
 * than --max-open-files): reopening it must fail that content with CONTENT_CHANGED at once, not
 * wait in open(2) for a writer that never comes (which held the sender past SIGINT).
 */
describe.skipIf(process.platform === 'win32')('a served file replaced by a FIFO (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let n = 0
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  /** Opening the FIFO for writing frees a reader blocked in its open (a sender without the fix). */
  const unblock = (fifo: string): void => {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
    } catch {
      // ENXIO: no reader waits on it.
    }
  }

  const fetchAfterSwap = async (sent: string, swapped: string, maxOpen: number): Promise<void> => {
    const sender = new Running([
      'send',
      sent,
      '--json',
      '--max-open-files',
      String(maxOpen),
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--data-dir',
      join(dir, `data${n}`),
    ])
    let getter: Running | undefined
    try {
      const ticket = (await sender.event('published')).ticket as string
      await rm(swapped)
      execFileSync('mkfifo', [swapped])
      getter = new Running(['get', ticket, '-o', join(dir, `out${n++}`), '--json'])
      const code = await Promise.race([
        getter.exited,
        new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 20 s'), 20_000)),
      ])
      expect(code, getter.lines.join('\n') + getter.stderr).toBe(1)
      expect(getter.events.at(-1)).toMatchObject({ event: 'error', code: 'CONTENT_CHANGED' })
      const withdrawn = await sender.event('withdrawn')
      expect(withdrawn.code).toBe('CONTENT_CHANGED')
      expect(withdrawn.message).toContain('named pipe (FIFO)')
      const stopped = await Promise.race([
        sender.stop('SIGINT'),
        new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000)),
      ])
      expect(stopped).toBe(0)
    } finally {
      unblock(swapped)
      getter?.kill()
      sender.kill()
    }
  }

  it('a folder of 40 files, 4 held open: the first file, reopened as a FIFO, is CONTENT_CHANGED and Ctrl-C stops the sender', async () => {
    const folder = join(dir, 'fx')
    await mkdir(folder)
    for (let i = 10; i < 50; i++) await writeFile(join(folder, `f${i}.txt`), `c${i}\n`)
    await fetchAfterSwap(folder, join(folder, 'f10.txt'), 4)
  }, 60_000)

  it('one file, 1 held open (its descriptor takes the place): the file, reopened as a FIFO, is CONTENT_CHANGED and Ctrl-C stops the sender', async () => {
    const file = join(dir, 'one.txt')
    await writeFile(file, 'one file\n'.repeat(1000))
    await fetchAfterSwap(file, file, 1)
  }, 60_000)
})
