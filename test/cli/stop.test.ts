import { existsSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { BLOCK, parseSuperblock } from '../../src/storage/journal-format.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { events, Running, run } from './run.ts'

const MiB = 1024 * 1024
/** Above journal.minBytes, so an interrupted fetch keeps a journal. */
const SIZE = 8 * MiB

/** Whether `<dest>.part.journal` holds the seal of a clean stop (a crash leaves none). */
async function sealed(dest: string): Promise<boolean> {
  const f = await open(`${dest}.part.journal`, 'r')
  try {
    const b = new Uint8Array(BLOCK)
    await f.read(b, 0, BLOCK, 0)
    const sb = parseSuperblock(b)
    if (typeof sb === 'string') throw new Error(sb)
    return sb.sealedPartMtimeNs !== undefined
  } finally {
    await f.close()
  }
}

describe('a command stopped by a closed output or a closed terminal (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let digest: string
  let sender: Running
  let ticket: string
  const procs: Running[] = []
  const start = (args: string[]): Running => {
    const p = new Running(args)
    procs.push(p)
    return p
  }
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, SIZE, 'random')
    digest = await sha256File(src)
    sender = new Running(['send', src, '--json'])
    ticket = (await sender.event('published')).ticket as string
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(async () => {
    sender.kill()
    await cleanup()
  })

  /** The fetch stopped cleanly: no lock left, a sealed journal, and the next run resumes from it. */
  async function resumesCleanly(dest: string): Promise<void> {
    expect(existsSync(`${dest}.part.lock`)).toBe(false)
    expect(await sealed(dest)).toBe(true)
    const r = await run(['get', ticket, '-o', dest, '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const evs = events(r.stdout)
    expect(evs[0]).toMatchObject({ event: 'resuming', mode: 'journal', totalBytes: SIZE })
    expect(evs[0]!.bytesKept as number).toBeGreaterThanOrEqual(MiB)
    expect(await sha256File(dest)).toBe(digest)
  }

  it('get whose stdout is closed (| head -1) stops as Ctrl-C stops it: exit 141, no stack trace', async () => {
    const dest = join(dir, 'piped.bin')
    const get = start(['get', ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= MiB)
    get.proc.stdout!.destroy()
    expect(await get.exited, get.stderr).toBe(141)
    expect(get.stderr).toBe('')
    await resumesCleanly(dest)
  })

  it('get whose terminal closed (SIGHUP) stops as SIGTERM stops it: exit 130, interrupted', async () => {
    const dest = join(dir, 'hangup.bin')
    const get = start(['get', ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= MiB)
    expect(await get.stop('SIGHUP')).toBe(130)
    expect(get.events.at(-1)).toMatchObject({ event: 'interrupted', path: dest })
    await resumesCleanly(dest)
  })

  it('send whose stdout is closed stops serving at its next line: exit 141, no stack trace', async () => {
    const send = start(['send', src])
    await send.line(/^haul1/)
    send.proc.stdout!.destroy()
    // A receiver makes the sender report it: that write finds the pipe closed, and serving ends.
    start(['get', send.lines.find((l) => l.startsWith('haul1'))!, '-o', join(dir, 'from-closed.bin')])
    expect(await send.exited, send.stderr).toBe(141)
    expect(send.stderr).not.toMatch(/Error|\n\s+at /)
  })
})
