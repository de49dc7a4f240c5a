import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AbortedError, DestinationBusyError, DestinationInvalidError } from '../../src/errors.ts'
import { DestinationLock, lockPath } from '../../src/storage/dest-lock.ts'
import { tempDir } from '../support/files.ts'

function startOf(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19]!
}

const lockOf = (o: Record<string, unknown>): string =>
  JSON.stringify({ host: hostname(), tag: 'theirs', since: '2026-01-01T00:00:00.000Z', ...o })

describe('DestinationLock', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const sleeper = spawn('sleep', ['60'])
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-lock-'))
  })
  afterAll(async () => {
    sleeper.kill('SIGKILL')
    await cleanup()
  })

  it('holds <dest>.part.lock naming this process, and removes it on release', async () => {
    const dest = join(dir, 'a.bin')
    const lock = await DestinationLock.acquire(dest)
    const owner = JSON.parse(await readFile(lockPath(dest), 'utf8')) as Record<string, unknown>
    expect(owner).toMatchObject({ pid: process.pid, host: hostname(), start: startOf(process.pid) })
    await expect(DestinationLock.acquire(dest)).rejects.toBeInstanceOf(DestinationBusyError)
    await lock.release()
    await lock.release()
    const again = await DestinationLock.acquire(dest)
    await again.release()
  })

  it('a live holder in another process is busy, named by its pid; the same pid with another start time is a reused pid: stale', async () => {
    const dest = join(dir, 'b.bin')
    const pid = sleeper.pid!
    await writeFile(lockPath(dest), lockOf({ pid, start: startOf(pid) }))
    const err = await DestinationLock.acquire(dest).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DestinationBusyError)
    expect((err as Error).message).toContain(`process ${pid}`)
    await writeFile(lockPath(dest), lockOf({ pid, start: '1' }))
    const lock = await DestinationLock.acquire(dest)
    expect(JSON.parse(await readFile(lockPath(dest), 'utf8')).pid).toBe(process.pid)
    await lock.release()
  })

  it('a holder that is gone (no such process) is stale and taken over', async () => {
    const dest = join(dir, 'c.bin')
    const gone = spawn('true')
    await new Promise((r) => gone.once('exit', r))
    await writeFile(lockPath(dest), lockOf({ pid: gone.pid }))
    const lock = await DestinationLock.acquire(dest)
    await lock.release()
  })

  it('a holder killed a moment ago and not yet reaped (a zombie) is stale and taken over', async () => {
    const dest = join(dir, 'z.bin')
    // The shell's background child exits; the shell becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'])
    try {
      const pid = Number(
        await new Promise<string>((resolve) =>
          parent.stdout.once('data', (d: Buffer) => resolve(d.toString())),
        ),
      )
      const stateOf = (): string => {
        const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
        return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]!
      }
      while (stateOf() !== 'Z') await new Promise((r) => setTimeout(r, 10))
      await writeFile(lockPath(dest), lockOf({ pid, start: startOf(pid) }))
      const lock = await DestinationLock.acquire(dest)
      expect(JSON.parse(await readFile(lockPath(dest), 'utf8')).pid).toBe(process.pid)
      await lock.release()
    } finally {
      parent.kill('SIGKILL')
    }
  })

  it('a lock from another host cannot be checked: busy, naming the host', async () => {
    const dest = join(dir, 'd.bin')
    await writeFile(lockPath(dest), lockOf({ pid: 1, host: 'elsewhere.example' }))
    const err = await DestinationLock.acquire(dest).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DestinationBusyError)
    expect((err as Error).message).toContain('on elsewhere.example')
  })

  it('an unreadable lock is busy while fresh (its owner may be writing it) and stale once old', async () => {
    const dest = join(dir, 'e.bin')
    await writeFile(lockPath(dest), '{"pid":')
    await expect(DestinationLock.acquire(dest)).rejects.toBeInstanceOf(DestinationBusyError)
    const old = new Date(Date.now() - 60_000)
    await utimes(lockPath(dest), old, old)
    const lock = await DestinationLock.acquire(dest)
    await lock.release()
  })

  it('wait: takes the lock once its holder releases it; a cancel ends the wait', async () => {
    const dest = join(dir, 'f.bin')
    const held = await DestinationLock.acquire(dest)
    let got: DestinationLock | undefined
    const waiting = DestinationLock.acquire(dest, { wait: true, pollMs: 20 }).then((l) => {
      got = l
      return l
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(got).toBeUndefined()
    await held.release()
    await (await waiting).release()
    const ac = new AbortController()
    const blocker = await DestinationLock.acquire(dest)
    const cancelled = DestinationLock.acquire(dest, { wait: true, pollMs: 20, signal: ac.signal })
    ac.abort()
    await expect(cancelled).rejects.toBeInstanceOf(AbortedError)
    await blocker.release()
  })

  it('a missing folder is a destination error, not a lock problem', async () => {
    await expect(DestinationLock.acquire(join(dir, 'no', 'such', 'x'))).rejects.toBeInstanceOf(
      DestinationInvalidError,
    )
  })
})
