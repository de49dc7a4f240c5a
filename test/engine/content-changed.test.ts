import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, copyFile, open, readdir, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ContentChangedError } from '../../src/errors.ts'
import { createEngine } from '../../src/index.ts'
import { RACY_WINDOW_NS } from '../../src/storage/source-file.ts'
import { useEnginePair } from '../support/engine-pair.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const MiB = 1024 * 1024

describe('a published file that changes is refused, never served', () => {
  const pair = useEnginePair({ sender: (dir) => ({ workers: 1, dataDir: join(dir, 'sender') }) })

  async function overwrite(path: string, at: number, bytes: Uint8Array): Promise<void> {
    const fh = await open(path, 'r+')
    try {
      await fh.write(bytes, 0, bytes.length, at)
    } finally {
      await fh.close()
    }
  }

  it("changed in place with its size and mtime put back: its ctime says it was touched, the changed chunk's hash refuses it (CONTENT_CHANGED)", async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'same-stat.bin')
    await writeFile(src, 3 * MiB, 'random')
    // A whole-second mtime, so it can be put back exactly after the change.
    const mtime = 1_700_000_000
    await utimes(src, mtime, mtime)
    const { ticket } = await sender.publish(src)
    await overwrite(src, MiB + 10, new Uint8Array([1, 2, 3, 4]))
    await utimes(src, mtime, mtime)
    const after = await stat(src)
    expect([after.size, after.mtimeMs]).toEqual([3 * MiB, mtime * 1000])
    const dst = join(dir, 'same-stat.out')
    const err = await receiver.fetch(ticket, dst).result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ContentChangedError)
    expect((err as ContentChangedError).code).toBe('CONTENT_CHANGED')
    expect(existsSync(dst)).toBe(false)
    // Withdrawn since: a fetch that comes later is told why, not that the content is unknown (a
    // fetch that had seen it retried CONTENT_NOT_FOUND for minutes, taking it for a restart).
    const later = await receiver.fetch(ticket, join(dir, 'same-stat-2.out')).result.catch((e: unknown) => e)
    expect(later).toMatchObject({ code: 'CONTENT_CHANGED' })
  })

  it('published well after its last change: served unhashed, byte for byte, and still refused once changed', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'settled.bin')
    await writeFile(src, 3 * MiB + 5, 'random')
    // Past the racy window the fingerprint alone vouches for the file (chunk-encoder.test.ts: no hash, no worker hop).
    await new Promise((r) => setTimeout(r, Number(RACY_WINDOW_NS / 1_000_000n) + 100))
    const { ticket } = await sender.publish(src)
    const first = join(dir, 'settled.out')
    await receiver.fetch(ticket, first).result
    expect(await sha256File(first)).toBe(await sha256File(src))
    const mtime = (await stat(src)).mtime
    await overwrite(src, 10, new Uint8Array([9, 9, 9]))
    await utimes(src, mtime, mtime)
    const err = await receiver.fetch(ticket, join(dir, 'settled-2.out')).result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ContentChangedError)
  })

  it('published racily, served once after the window (so no longer hashed), then changed: still refused', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'promoted.bin')
    await writeFile(src, 3 * MiB + 7, 'random')
    const { ticket } = await sender.publish(src)
    await new Promise((r) => setTimeout(r, Number(RACY_WINDOW_NS / 1_000_000n) + 100))
    // Every chunk hashed from reads after the window: the fingerprint vouches from here on.
    const first = join(dir, 'promoted.out')
    await receiver.fetch(ticket, first).result
    expect(await sha256File(first)).toBe(await sha256File(src))
    const second = join(dir, 'promoted-2.out')
    await receiver.fetch(ticket, second).result
    expect(await sha256File(second)).toBe(await sha256File(src))
    const mtime = (await stat(src)).mtime
    await overwrite(src, MiB + 3, new Uint8Array([7, 7]))
    await utimes(src, mtime, mtime)
    const err = await receiver.fetch(ticket, join(dir, 'promoted-3.out')).result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ContentChangedError)
  })

  it('touched but not written (chmod, utimes): still served byte for byte, its chunks hashed again', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'touched.bin')
    await writeFile(src, 3 * MiB + 9, 'random')
    const { ticket } = await sender.publish(src)
    await chmod(src, 0o640)
    await utimes(src, 1_700_000_000, 1_700_000_000)
    const dst = join(dir, 'touched.out')
    await receiver.fetch(ticket, dst).result
    expect(await sha256File(dst)).toBe(await sha256File(src))
  })

  it('grown since it was published: refused from its size and mtime (CONTENT_CHANGED)', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'grown.bin')
    await writeFile(src, 2 * MiB, 'random')
    const { ticket } = await sender.publish(src)
    await overwrite(src, 2 * MiB, new Uint8Array(100))
    const dst = join(dir, 'grown.out')
    const err = await receiver.fetch(ticket, dst).result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ContentChangedError)
    expect(existsSync(dst)).toBe(false)
  })

  it('changed part-way through a fetch: what was verified stays for another sender of the content, and the ticket published again fetches into the same place', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'changing.bin')
    // Over journal.minBytes, so the fetch keeps a journal beside its part file.
    await writeFile(src, 40 * MiB, 'random')
    const copy = join(dir, 'unchanged-copy.bin')
    await copyFile(src, copy)
    const { ticket } = await sender.publish(src)
    const dst = join(dir, 'changing.out')
    /** Fetches `t` into dst, changing the sender's file once some chunks are verified. */
    const interrupted = async (t: string): Promise<void> => {
      const h = receiver.fetch(t, dst, { maxBytesPerSec: 8 * MiB })
      await eventually(() => (h.progress()?.bytesDone ?? 0) >= 4 * MiB, 'some chunks verified')
      await overwrite(src, 30 * MiB, randomBytes(3))
      expect(await h.result.catch((e: unknown) => e)).toBeInstanceOf(ContentChangedError)
    }
    await interrupted(ticket)
    expect(existsSync(`${dst}.part`)).toBe(true)
    // The same content from a sender whose copy did not change: what was verified is kept.
    const other = await createEngine({ workers: 1 })
    try {
      const unchanged = await other.publish(copy)
      let kept = 0
      await receiver.fetch(unchanged.ticket, dst, { onResume: (r) => (kept = r.chunksKept) }).result
      expect(kept).toBeGreaterThan(0)
      expect(await sha256File(dst)).toBe(await sha256File(copy))
    } finally {
      await other.stop()
    }
    // Changed again part-way; then the file published again is another content: its fetch here
    // takes over what the first left, unasked (no overwrite), keeps the chunks it verified that
    // the change did not touch, and leaves nothing beside the file.
    const second = join(dir, 'changing-2.out')
    const again = await sender.publish(src)
    const h = receiver.fetch(again.ticket, second, { maxBytesPerSec: 8 * MiB })
    await eventually(() => (h.progress()?.bytesDone ?? 0) >= 4 * MiB, 'some chunks verified')
    await overwrite(src, 20 * MiB, randomBytes(3))
    expect(await h.result.catch((e: unknown) => e)).toBeInstanceOf(ContentChangedError)
    const third = await sender.publish(src)
    const r = await receiver.fetch(third.ticket, second).result
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'other-content' })
    expect(r.resume.bytesKept).toBeGreaterThanOrEqual(2 * MiB)
    expect(await sha256File(second)).toBe(await sha256File(src))
    expect((await readdir(dir)).filter((n) => n.startsWith('changing-2.out.'))).toEqual([])
  })
})
