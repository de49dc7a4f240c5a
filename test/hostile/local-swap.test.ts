/**
 * Never through a path component that changed: whoever can write the destination folder's parent
 * moves the folder away mid-transfer and puts a symbolic link to another folder (the user's, with
 * files under the very names the fetch uses) in its place. The fetch fails with
 * DESTINATION_INVALID; the other folder is untouched; the part file stays in the original folder.
 */
import { existsSync } from 'node:fs'
import { mkdir, readdir, rename, symlink, writeFile as writeText } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStorage } from '../../src/fetch/resume.ts'
import { createEngine, DestinationInvalidError, HaulError } from '../../src/index.ts'
import { DestinationLock } from '../../src/storage/dest-lock.ts'
import { defaultJournalOptions } from '../../src/storage/journal.ts'
import { PartFile } from '../../src/storage/part-file.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { treeState } from './support/local-tree.ts'

const MiB = 1024 * 1024

describe('the destination folder swapped for a symlink', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let n = 0

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-local-swap-'))
  })
  afterAll(() => cleanup())

  /** A download folder, and an `outside` folder holding files under the names a fetch to `name` uses. */
  async function folders(name: string) {
    const base = join(dir, `case-${++n}`)
    const dl = join(base, 'dl')
    const outside = join(base, 'outside')
    await mkdir(dl, { recursive: true })
    await mkdir(outside)
    await writeText(join(outside, name), 'the user’s own file\n')
    await writeText(join(outside, `${name}.part`), 'what the attacker wants installed\n')
    await writeText(join(outside, `${name}.part.journal`), 'not a journal, not haul’s\n')
    const swap = async (): Promise<void> => {
      await rename(dl, `${dl}.moved`)
      await symlink(outside, dl)
    }
    return { dl, outside, moved: `${dl}.moved`, dest: join(dl, name), swap }
  }

  it('mid-transfer (rate-limited sender): DESTINATION_INVALID, nothing outside touched, the part file left in the moved folder', async () => {
    const sender = await createEngine({ workers: 1, limits: { uploadBytesPerSec: 2 * MiB } })
    const receiver = await createEngine({ workers: 1, retry: { maxAttempts: 2, baseDelayMs: 10 } })
    try {
      const src = join(dir, 'slow.bin')
      await writeFile(src, 8 * MiB, 'random')
      const { ticket } = await sender.publish(src)
      const f = await folders('out.bin')
      const before = await treeState(f.outside)
      let swapped: Promise<void> | undefined
      let done = 0
      const err = await receiver
        .fetch(ticket, f.dest, {
          onProgress: (p) => {
            done = p.bytesDone
            if (p.bytesDone >= MiB && swapped === undefined) swapped = f.swap()
          },
        })
        .result.then(
          () => undefined,
          (e: unknown) => e,
        )
      await swapped
      expect(swapped, `the swap happened mid-transfer (${String(err)})`).toBeDefined()
      expect(err).toBeInstanceOf(HaulError)
      expect((err as HaulError).code, (err as Error).message).toBe('DESTINATION_INVALID')
      expect((err as Error).message).toMatch(/moved, removed or replaced/)
      // Found at the journal's next sync, not once the whole file was fetched into the moved folder.
      expect(done).toBeLessThan(8 * MiB)
      expect(await treeState(f.outside)).toEqual(before)
      expect((await readdir(f.moved)).sort()).toEqual(['out.bin.part', 'out.bin.part.journal'])
    } finally {
      await receiver.stop()
      await sender.stop()
    }
  }, 60_000)

  it('between the last write and the final rename: commit refuses, the other folder keeps its files', async () => {
    const f = await folders('c.bin')
    const before = await treeState(f.outside)
    const part = await PartFile.open(f.dest, 4)
    await part.write(0, Uint8Array.of(1, 2, 3, 4))
    await f.swap()
    await expect(part.commit()).rejects.toBeInstanceOf(DestinationInvalidError)
    await part.close()
    expect(await treeState(f.outside)).toEqual(before)
    expect(await readdir(f.moved)).toEqual(['c.bin.part'])
  })

  it('after the lock was taken and before the files are opened: the files are not opened in the other folder', async () => {
    const f = await folders('l.bin')
    const lock = await DestinationLock.acquire(f.dest)
    try {
      await f.swap()
      const before = await treeState(f.outside)
      const err = await openStorage({
        dest: f.dest,
        cid: new Uint8Array(32),
        headerBytes: new Uint8Array(8),
        totalSize: 10,
        leafCount: 1,
        journal: defaultJournalOptions,
        overwrite: false,
      }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DestinationInvalidError)
      expect(await treeState(f.outside)).toEqual(before)
    } finally {
      await lock.release()
    }
    // Released in the folder it was taken in, wherever that went; nothing appears in the other.
    expect(existsSync(join(f.moved, 'l.bin.part.lock'))).toBe(false)
    expect(existsSync(join(f.outside, 'l.bin.part.lock'))).toBe(false)
  })
})
