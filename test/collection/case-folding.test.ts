import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { useEnginePair } from '../support/engine-pair.ts'
import { failure } from '../support/errors.ts'
import { craftManifest, file, serveAsCollection } from '../support/manifests.ts'

// This machine's file systems keep case apart; fetch-collection.ts learns whether the
// destination folds case from a probe: it writes `<stage>/case-<hex>-Aa` and looks for
// `…-aA`. Here that look finds the file written, as it would on macOS or Windows.
vi.mock(import('../../src/storage/safe-open.ts'), async (importOriginal) => {
  const real = await importOriginal()
  return {
    ...real,
    entryAt: (path: string, shown?: string) =>
      real.entryAt(path.replace(/(\/case-[0-9a-f]+)-aA$/, '$1-Aa'), shown),
  }
})

describe('where the destination ignores case, names differing only in case are refused', () => {
  const pair = useEnginePair({ sender: (d) => ({ workers: 1, dataDir: join(d, 'sender-data') }) })
  let served = 0

  async function collidingTicket(): Promise<string> {
    const pack = await serveAsCollection(pair.sender, pair.dir, `pack-${++served}`, Buffer.from('UPPERlower'))
    const entries = [file('A.txt', 5), file('B.txt', 1), file('a.txt', 5), file('b.txt', 1)]
    const manifest = craftManifest(entries, pack.cid)
    return (await serveAsCollection(pair.sender, pair.dir, `manifest-${served}`, manifest)).ticket
  }

  it('naming the pair, and the folders this fetch created are gone again', async () => {
    const ticket = await collidingTicket()
    const top = join(pair.dir, 'new-top')
    const dest = join(top, 'inner', 'dest')
    const err = await failure(pair.receiver.fetchCollection(ticket, dest))
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toContain('"A.txt" and "a.txt" are one file on this file system')
    expect(err.message).toContain('and 1 more pairs')
    expect(existsSync(top)).toBe(false)
  })

  it('a folder that was there stays, as it was', async () => {
    const ticket = await collidingTicket()
    const dest = join(pair.dir, 'existing')
    await mkdir(dest)
    await writeFile(join(dest, 'mine.txt'), 'mine')
    await failure(pair.receiver.fetchCollection(ticket, dest)).then((e) =>
      expect(e.code).toBe('MANIFEST_INVALID'),
    )
    expect(await readdir(dest)).toEqual(['mine.txt'])
    // No staging folder is left to pass for a resume, which would replace mine.txt without leave.
    const pack = await serveAsCollection(pair.sender, pair.dir, `pack-${++served}`, Buffer.from('other'))
    const manifest = craftManifest([file('mine.txt', 5)], pack.cid)
    const other = await serveAsCollection(pair.sender, pair.dir, `manifest-${served}`, manifest)
    const exists = await failure(pair.receiver.fetchCollection(other.ticket, dest))
    expect(exists.code).toBe('DESTINATION_EXISTS')
    expect(await readFile(join(dest, 'mine.txt'), 'utf8')).toBe('mine')

    const empty = join(pair.dir, 'existing-empty')
    await mkdir(empty)
    await failure(pair.receiver.fetchCollection(ticket, empty)).then((e) =>
      expect(e.code).toBe('MANIFEST_INVALID'),
    )
    expect(await readdir(empty)).toEqual([])
  })
})
