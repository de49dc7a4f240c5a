import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { journalSuperblock } from '../support/crash.ts'
import { sha256File } from '../support/files.ts'
import { events, run, useSentFile } from './run.ts'

const MiB = 1024 * 1024
/** Above journal.minBytes, so an interrupted fetch keeps a journal. */
const SIZE = 8 * MiB

/** Whether `<dest>.part.journal` holds the seal of a clean stop (a crash leaves none). */
async function sealed(dest: string): Promise<boolean> {
  return (await journalSuperblock(dest)).sealedPart !== undefined
}

describe('a command stopped by a closed output or a closed terminal (real processes)', () => {
  const sent = useSentFile(SIZE)
  const { start } = sent

  /** The fetch stopped cleanly: no lock left, a sealed journal, and the next run resumes from it. */
  async function resumesCleanly(dest: string): Promise<void> {
    expect(existsSync(`${dest}.part.lock`)).toBe(false)
    expect(await sealed(dest)).toBe(true)
    const r = await run(['get', sent.ticket, '-o', dest, '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const evs = events(r.stdout)
    expect(evs[0]).toMatchObject({ event: 'resuming', mode: 'journal', totalBytes: SIZE })
    expect(evs[0]!.bytesKept as number).toBeGreaterThanOrEqual(MiB)
    expect(await sha256File(dest)).toBe(sent.digest)
  }

  it('get whose stdout is closed (| head -1) stops as Ctrl-C stops it: exit 141, no stack trace', async () => {
    const dest = join(sent.dir, 'piped.bin')
    const get = start(['get', sent.ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= MiB)
    get.proc.stdout!.destroy()
    expect(await get.exited, get.stderr).toBe(141)
    expect(get.stderr).toBe('')
    await resumesCleanly(dest)
  })

  it('get whose terminal closed (SIGHUP) stops as SIGTERM stops it: exit 130, interrupted', async () => {
    const dest = join(sent.dir, 'hangup.bin')
    const get = start(['get', sent.ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= MiB)
    expect(await get.stop('SIGHUP')).toBe(130)
    expect(get.events.at(-1)).toMatchObject({ event: 'interrupted', path: dest })
    await resumesCleanly(dest)
  })

  it('send whose stdout is closed stops serving at its next line: exit 141, no stack trace', async () => {
    const send = start(['send', sent.src])
    await send.line(/^haul1/)
    send.proc.stdout!.destroy()
    // A receiver makes the sender report it: that write finds the pipe closed, and serving ends.
    start(['get', send.lines.find((l) => l.startsWith('haul1'))!, '-o', join(sent.dir, 'from-closed.bin')])
    expect(await send.exited, send.stderr).toBe(141)
    expect(send.stderr).not.toMatch(/Error|\n\s+at /)
  })
})
