import { existsSync } from 'node:fs'
import { link, readFile, stat, symlink, unlink, writeFile as writeText } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine, type TransferProgress } from '../../src/index.ts'
import { lockPath } from '../../src/storage/dest-lock.ts'
import { journalPath } from '../../src/storage/journal.ts'
import { spawnPeer } from '../support/children.ts'
import { failure } from '../support/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { startSender } from '../support/sender.ts'
import { servedBytes } from '../support/served.ts'

const MiB = 1024 * 1024

describe('one destination, one writer; nothing destroyed silently', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  const served = servedBytes()
  let receiver: Engine
  let ticket: string
  let src: string
  let srcHash: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-dest-'))
    sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap: served.wrap })
    src = join(dir, 'src.bin')
    await writeFile(src, 6 * MiB + 123, 'random')
    srcHash = await sha256File(src)
    ticket = await sender.publish(src)
    receiver = await createEngine({ workers: 1 })
  })
  afterAll(async () => {
    await receiver.stop()
    await sender.stop()
    await cleanup()
  })

  it('two fetches to one destination in one engine: the second fails at once with DESTINATION_BUSY; with waitIfBusy it waits, then finds the content there', async () => {
    const dest = join(dir, 'twice.bin')
    const first = receiver.fetch(ticket, dest)
    const second = receiver.fetch(ticket, dest)
    const err = await failure(second.result)
    expect(err.code).toBe('DESTINATION_BUSY')
    expect(second.status()).toBe('failed')
    const third = receiver.fetch(ticket, dest, { waitIfBusy: true })
    const r1 = await first.result
    expect(r1.resume.mode).toBe('fresh')
    const before = served.bytes
    const r3 = await third.result
    expect(r3.resume.mode).toBe('present')
    expect(served.bytes).toBe(before)
    expect(await sha256File(dest)).toBe(srcHash)
    expect(existsSync(lockPath(dest))).toBe(false)
  })

  it('a file already holding the content is read back with the check in progress (bytes checked up to its size), then reported present', async () => {
    const dest = join(dir, 'checked.bin')
    await receiver.fetch(ticket, dest).result
    const seen: TransferProgress[] = []
    const again = await receiver.fetch(ticket, dest, { onProgress: (p) => seen.push(p) }).result
    expect(again.resume.mode).toBe('present')
    const checks = seen.flatMap((p) => (p.check === undefined ? [] : [p.check]))
    expect(checks.length).toBeGreaterThanOrEqual(1)
    const sizes = checks.map((c) => c.bytesChecked)
    expect(sizes).toEqual([...sizes].sort((a, b) => a - b))
    expect(checks.at(-1)).toMatchObject({
      bytesChecked: 6 * MiB + 123,
      bytesToCheck: 6 * MiB + 123,
      chunksChecked: 7,
    })
    // Then the fetch's own progress: everything there, nothing fetched.
    expect(seen.at(-1)).toMatchObject({ bytesDone: 6 * MiB + 123, keptBytes: 6 * MiB + 123 })
    expect(seen.at(-1)!.check).toBeUndefined()
  })

  it('a crash between linking the part file into place and unlinking its name: the next fetch finds the content and removes the leftovers', async () => {
    const dest = join(dir, 'linked.bin')
    await receiver.fetch(ticket, dest).result
    // What PartFile.commit leaves when killed between link() and unlink(): two names, one file, and the journal.
    await link(dest, `${dest}.part`)
    await writeText(journalPath(dest), 'journal')
    const again = await receiver.fetch(ticket, dest).result
    expect(again.resume.mode).toBe('present')
    expect(existsSync(`${dest}.part`)).toBe(false)
    expect(existsSync(journalPath(dest))).toBe(false)
    expect(await sha256File(dest)).toBe(srcHash)
    expect((await stat(dest)).nlink).toBe(1)
    // Another file at <dest>.part is not a leftover of this one: left alone.
    await writeText(`${dest}.part`, 'something else')
    await receiver.fetch(ticket, dest).result
    expect(await readFile(`${dest}.part`, 'utf8')).toBe('something else')
  })

  it('a fetch cancelled, then started again as soon as its result rejects: not busy, and it resumes', async () => {
    const dest = join(dir, 'again.bin')
    const stop = new AbortController()
    // Cancelled once running (the destination locked, its first chunk written).
    // Throttled, so the cancel lands before the last chunk does (unthrottled, the whole file
    // could arrive before the first progress event).
    const first = receiver.fetch(ticket, dest, {
      signal: stop.signal,
      maxBytesPerSec: MiB,
      onProgress: (p) => (p.bytesDone > 0 ? stop.abort() : undefined),
    })
    // No other await in between: the path is free by the time the caller sees the rejection.
    let again: ReturnType<Engine['fetch']> | undefined
    try {
      await first.result
    } catch {
      again = receiver.fetch(ticket, dest)
    }
    expect(first.status()).toBe('cancelled')
    const r = await again!.result
    expect(await sha256File(dest)).toBe(srcHash)
    expect(r.resume.bytesKept).toBeGreaterThan(0)
  })

  it('a destination another process is writing: DESTINATION_BUSY naming that process; a fetch asked to wait does, and once the writer is killed (-9) takes over its stale lock and resumes its part file', async () => {
    const slow = await createEngine({ workers: 1, limits: { uploadBytesPerSec: 1_500_000 } })
    const f = join(dir, 'slow-src.bin')
    await writeFile(f, 12 * MiB, 'random')
    const slowTicket = (await slow.publish(f)).ticket
    const dest = join(dir, 'contended.bin')
    const child = spawnPeer({
      mode: 'get',
      ticket: slowTicket,
      dest,
      engine: { journal: { flushBytes: MiB } },
    })
    try {
      await child.waitFor((e) => e.event === 'progress' && (e.bytesDone as number) >= 3 * MiB, 'progress')
      const err = await failure(receiver.fetch(slowTicket, dest).result)
      expect(err.code).toBe('DESTINATION_BUSY')
      expect(err.message).toContain(`process ${child.proc.pid}`)
      // A fetch that asks to wait does; kill -9 leaves the child's lock behind, and the waiter
      // finds it stale and takes it over.
      const waiter = receiver.fetch(slowTicket, dest, { waitIfBusy: true })
      child.proc.kill('SIGKILL')
      await child.exited
      const r = await waiter.result
      expect(r.resume.mode).toBe('journal')
      expect(r.resume.chunksKept).toBeGreaterThan(0)
      expect(await sha256File(dest)).toBe(await sha256File(f))
      expect(existsSync(lockPath(dest))).toBe(false)
    } finally {
      child.proc.kill('SIGKILL')
      await slow.stop()
    }
  }, 60_000)

  it('an unrelated file at the destination: DESTINATION_EXISTS before anything is written; with overwrite it is replaced', async () => {
    const dest = join(dir, 'mine.txt')
    await writeText(dest, 'my notes, not yours\n')
    const before = served.bytes
    const err = await failure(receiver.fetch(ticket, dest).result)
    expect(err.code).toBe('DESTINATION_EXISTS')
    expect(err.message).toContain('--force')
    expect(await readFile(dest, 'utf8')).toBe('my notes, not yours\n')
    expect(existsSync(`${dest}.part`)).toBe(false)
    expect(existsSync(journalPath(dest))).toBe(false)
    expect(served.bytes).toBe(before)
    const r = await receiver.fetch(ticket, dest, { overwrite: true }).result
    // What was there is checked for chunks of the content (reason destination): none match.
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'destination', chunksKept: 0 })
    expect(await sha256File(dest)).toBe(srcHash)
  })

  it('a file that appears at the destination during the fetch is not replaced: DESTINATION_EXISTS, the fetched file kept as the part file; with overwrite the same get finishes from it', async () => {
    const dest = join(dir, 'appeared.txt')
    let written: Promise<void> | undefined
    const handle = receiver.fetch(ticket, dest, {
      onProgress: () => {
        written ??= writeText(dest, 'saved while you were fetching\n')
      },
    })
    const err = await failure(handle.result)
    await written
    expect(err.code).toBe('DESTINATION_EXISTS')
    expect(err.message).toContain('--force')
    expect(await readFile(dest, 'utf8')).toBe('saved while you were fetching\n')
    expect(await sha256File(`${dest}.part`)).toBe(srcHash)
    const before = served.bytes
    const r = await receiver.fetch(ticket, dest, { overwrite: true }).result
    expect(r.resume.mode).toBe('journal')
    expect(served.bytes).toBe(before)
    expect(await sha256File(dest)).toBe(srcHash)
    expect(existsSync(`${dest}.part`)).toBe(false)
  })

  it('a part file removed or replaced during the fetch fails it at the next journal flush, not once every chunk is in', async () => {
    const slow = await createEngine({ workers: 1, journal: { flushIntervalMs: 100 } })
    try {
      for (const how of ['removed', 'replaced'] as const) {
        const dest = join(dir, `${how}-part.bin`)
        let done: Promise<void> | undefined
        let last: TransferProgress | undefined
        const handle = slow.fetch(ticket, dest, {
          maxBytesPerSec: MiB,
          onProgress: (p) => {
            last = p
            done ??= (async () => {
              await unlink(`${dest}.part`)
              if (how === 'replaced') await writeText(`${dest}.part`, "another program's file")
            })()
          },
        })
        const err = await failure(handle.result)
        await done
        expect(err.code).toBe('DESTINATION_INVALID')
        expect(err.message).toContain(`${dest}.part was ${how} by`)
        // Six seconds of data at 1 MiB/s: it stopped long before the last chunk.
        expect(last!.bytesDone).toBeLessThan(4 * MiB)
        expect(existsSync(dest)).toBe(false)
        expect(existsSync(lockPath(dest))).toBe(false)
      }
    } finally {
      await slow.stop()
    }
  })

  it('a file of the same size but other bytes is other data too', async () => {
    const dest = join(dir, 'same-size.bin')
    await writeFile(dest, (await stat(src)).size, 'random')
    const theirs = await sha256File(dest)
    expect((await failure(receiver.fetch(ticket, dest).result)).code).toBe('DESTINATION_EXISTS')
    expect(await sha256File(dest)).toBe(theirs)
  })

  it('the same content already at the destination: done at once, reported as present, no chunk fetched', async () => {
    const dest = join(dir, 'already.bin')
    await receiver.fetch(ticket, dest).result
    const mtime = (await stat(dest)).mtimeMs
    const before = served.bytes
    const r = await receiver.fetch(ticket, dest).result
    expect(r.resume).toMatchObject({ mode: 'present', chunksKept: r.chunks, bytesKept: r.bytes })
    expect(served.bytes).toBe(before)
    expect((await stat(dest)).mtimeMs).toBe(mtime)
  })

  it('a symlink at the destination is never followed: DESTINATION_EXISTS, its target untouched', async () => {
    const target = join(dir, 'precious.txt')
    await writeText(target, 'keep me\n')
    const dest = join(dir, 'link.bin')
    await symlink(target, dest)
    expect((await failure(receiver.fetch(ticket, dest).result)).code).toBe('DESTINATION_EXISTS')
    expect(await readFile(target, 'utf8')).toBe('keep me\n')
  })

  it('a failed fetch leaves no lock behind', async () => {
    const dest = join(dir, 'nowhere', 'x.bin')
    const err = await failure(receiver.fetch(ticket, dest).result)
    expect(err.code).toBe('DESTINATION_INVALID')
    expect(existsSync(lockPath(dest))).toBe(false)
  })
})
