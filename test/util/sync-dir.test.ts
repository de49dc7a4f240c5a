import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FolderSyncs, syncDir } from '../../src/util/sync-dir.ts'

/** A stand-in fsync that records each one as it starts; the test finishes it by hand. */
function recorder() {
  const started: Array<{ dir: string; finish: (err?: Error) => void }> = []
  const syncs = new FolderSyncs(
    (dir) =>
      new Promise<void>((resolve, reject) => {
        started.push({ dir, finish: (err) => (err ? reject(err) : resolve()) })
      }),
  )
  return { syncs, started }
}

const settle = () => new Promise<void>((r) => setImmediate(r))

describe('FolderSyncs (group commit of folder fsyncs)', () => {
  it('callers in one turn share one fsync', async () => {
    const { syncs, started } = recorder()
    const done = Array.from({ length: 10 }, () => syncs.sync('/a'))
    await settle()
    expect(started).toHaveLength(1)
    started[0]!.finish()
    await Promise.all(done)
    expect(syncs.size).toBe(0)
  })

  it('a caller arriving while an fsync runs gets a later one, which all later callers share', async () => {
    const { syncs, started } = recorder()
    const first = syncs.sync('/a')
    await settle()
    expect(started).toHaveLength(1)
    let lateDone = false
    const late = Array.from({ length: 5 }, () => syncs.sync('/a'))
    void Promise.all(late).then(() => (lateDone = true))
    await settle()
    // The running fsync may have started before the late callers' renames: they must not share it.
    expect(started).toHaveLength(1)
    started[0]!.finish()
    await first
    await settle()
    expect(lateDone).toBe(false)
    expect(started).toHaveLength(2)
    started[1]!.finish()
    await Promise.all(late)
    expect(syncs.size).toBe(0)
  })

  it('folders do not wait on each other', async () => {
    const { syncs, started } = recorder()
    const a = syncs.sync('/a')
    const b = syncs.sync('/b')
    await settle()
    expect(started.map((s) => s.dir)).toEqual(['/a', '/b'])
    started[1]!.finish()
    await b
    started[0]!.finish()
    await a
    expect(syncs.size).toBe(0)
  })

  it('a failed fsync fails every caller that shared it, and the next round still runs', async () => {
    const { syncs, started } = recorder()
    const shared = [syncs.sync('/a'), syncs.sync('/a')]
    await settle()
    const late = syncs.sync('/a')
    started[0]!.finish(new Error('EIO'))
    for (const p of shared) await expect(p).rejects.toThrow('EIO')
    await settle()
    expect(started).toHaveLength(2)
    started[1]!.finish()
    await expect(late).resolves.toBeUndefined()
    expect(syncs.size).toBe(0)
  })

  it('syncDir fsyncs a real folder and rejects for a missing one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'haul-syncdir-'))
    try {
      await writeFile(join(dir, 'x.part'), 'x')
      await rename(join(dir, 'x.part'), join(dir, 'x'))
      await Promise.all([syncDir(dir), syncDir(dir), syncDir(dir)])
      await expect(syncDir(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
