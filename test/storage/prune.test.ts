import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { descriptorFolder, pin, pruneFolder } from '../../src/storage/data-folder.ts'

describe('pruning the descriptors folder', () => {
  let root: string
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'haul-prune-'))
  })
  afterAll(() => rm(root, { recursive: true, force: true }))

  /** `n` files named from `from` on, each a second older than the next. */
  async function files(dir: string, from: number, n: number): Promise<void> {
    for (let i = from; i < from + n; i++) {
      await writeFile(join(dir, `d${i}`), 'x')
      await utimes(join(dir, `d${i}`), 1_700_000_000 + i, 1_700_000_000 + i)
    }
  }

  it('never removes a pinned file (a descriptor of content still served), however old', async () => {
    const dir = await mkdtemp(join(root, 'pinned-'))
    await files(dir, 0, 20)
    const unpin = [pin(join(dir, 'd0')), pin(join(dir, 'd1'))]
    await pruneFolder(dir, 8)
    const left = await readdir(dir)
    expect(left).toContain('d0')
    expect(left).toContain('d1')
    expect(left).not.toContain('d2')
    expect(left.length).toBeLessThanOrEqual(8)
    // Unpinned, they go as the oldest at the next prune that lists the folder.
    for (const u of unpin) u()
    await files(dir, 20, 20)
    for (let i = 0; i < 20; i++) await pruneFolder(dir, 8)
    expect(await readdir(dir)).not.toContain('d0')
  })

  it('lists the folder only when its count may be over the bound, not on every call', async () => {
    const dir = await mkdtemp(join(root, 'count-'))
    await files(dir, 0, 10)
    await pruneFolder(dir, 16)
    // Written behind its back (another process): not seen until its own count passes the bound.
    await files(dir, 10, 20)
    for (let i = 0; i < 6; i++) await pruneFolder(dir, 16)
    expect((await readdir(dir)).length).toBe(30)
    await pruneFolder(dir, 16)
    // Then pruned to the bound less an eighth, so the next calls do not list it again at once.
    expect((await readdir(dir)).length).toBe(14)
  })

  it('with pinned files holding it over the bound, lists it again only after an eighth of the bound more', async () => {
    const dir = await mkdtemp(join(root, 'over-'))
    await files(dir, 0, 16)
    const unpin = Array.from({ length: 16 }, (_, i) => pin(join(dir, `d${i}`)))
    await pruneFolder(dir, 8)
    expect((await readdir(dir)).length).toBe(16)
    for (const u of unpin) u()
    // Listed again once its count passes 16 plus an eighth of the bound (1): the second call on.
    await pruneFolder(dir, 8)
    expect((await readdir(dir)).length).toBe(16)
    await pruneFolder(dir, 8)
    expect((await readdir(dir)).length).toBe(7)
  })

  it('removes the files a killed process owned there (a manifest descriptor, a racy one, a temporary) when it is next opened', async () => {
    const dataDir = await mkdtemp(join(root, 'orphans-'))
    const dir = join(dataDir, 'descriptors')
    const gone = spawnSync('true').pid
    const orphans = [
      `a.manifest.${gone}.k3j2.haul`,
      `b.pack.haul.${gone}.x9.racy`,
      `c.haul.${gone}.0a1b2c3d.tmp`,
    ]
    const kept = [
      `a.manifest.${process.pid}.k3j2.haul`, // this process's own: still in use
      '0123456789abcdef0123456789abcdef.haul',
      '0123456789abcdef0123456789abcdef.pack.haul',
      '0123456789abcdef0123456789abcdef.manifest',
    ]
    await descriptorFolder(dataDir)
    for (const n of [...orphans, ...kept]) await writeFile(join(dir, n), 'x')
    // Swept once per folder and process: the files written after this process opened it stay.
    await descriptorFolder(dataDir)
    expect((await readdir(dir)).length).toBe(orphans.length + kept.length)
    // Another process opening it (a sender started again) removes the orphans only.
    const other = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { descriptorFolder } from ${JSON.stringify(join(process.cwd(), 'src/storage/data-folder.ts'))}; await descriptorFolder(${JSON.stringify(dataDir)})`,
      ],
      { encoding: 'utf8' },
    )
    expect(other.stderr).toBe('')
    expect((await readdir(dir)).sort()).toEqual([...kept].sort())
  })
})
