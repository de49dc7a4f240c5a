import { existsSync } from 'node:fs'
import { open, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ContentChangedError } from '../../src/errors.ts'
import { useEnginePair } from '../support/engine-pair.ts'
import { writeFile } from '../support/files.ts'

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

  it('changed in place with its size and mtime put back: the chunk hash catches it (CONTENT_CHANGED)', async () => {
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
})
