import { execFileSync } from 'node:child_process'
import { mkdir, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DestinationInvalidError, NoSpaceError, PermissionDeniedError } from '../../src/errors.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { errorFromReply } from '../../src/workers/pool-handoff.ts'
import { tempDir, writeFile } from '../support/files.ts'

const isRoot = process.getuid?.() === 0

/**
 * A worker's file errors (src/workers/cut-files.ts) reach the main thread with their class and
 * code, naming real paths, never the pinned folder's `/proc/self/fd/<n>`.
 */
describe('errors of a cut on a worker thread', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let pool: WorkerPool
  let pack: string
  const files = Array.from({ length: 40 }, (_, i) => ({
    path: `f${i}.bin`,
    offset: i * 100,
    size: 100,
    mode: 0o644,
  }))
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-cut-'))
    pack = join(dir, 'pack')
    await writeFile(pack, 4000, 'random')
    pool = new WorkerPool({ threads: 1 })
  })
  afterAll(async () => {
    await pool.destroy()
    await cleanup()
  })

  /** Cuts `files` into `real` addressed through a descriptor of it (as DestFolder.at does); the error. */
  async function cutThroughFd(real: string): Promise<unknown> {
    const fh = await open(real, 'r')
    try {
      return await pool
        .cutFiles({
          pack,
          tree: `/proc/self/fd/${fh.fd}/tree`,
          shownTree: `${real}/tree`,
          files,
          end: 4000,
          links: [],
        })
        .then(
          () => undefined,
          (err: unknown) => err,
        )
    } finally {
      await fh.close()
    }
  }

  it('each code a worker sends comes back as its class', () => {
    for (const [code, cls] of [
      ['NO_SPACE', NoSpaceError],
      ['PERMISSION_DENIED', PermissionDeniedError],
      ['DESTINATION_INVALID', DestinationInvalidError],
    ] as const) {
      const err = errorFromReply({ kind: 'error', code, message: 'why' })
      expect(err).toBeInstanceOf(cls)
      expect(err).toMatchObject({ code, message: 'why' })
    }
  })

  it('a tree folder that is missing is DESTINATION_INVALID naming its real path', async () => {
    const real = join(dir, 'no-tree')
    await mkdir(real)
    const err = await cutThroughFd(real)
    expect(err).toBeInstanceOf(DestinationInvalidError)
    expect((err as Error).message).toContain(`${real}/tree`)
    expect((err as Error).message).not.toContain('/proc/self/fd')
  })

  it.skipIf(!isRoot)(
    'out of inodes (a tmpfs with nr_inodes=20: mounts one, needs root) is NO_SPACE saying so, with the real path',
    async () => {
      const real = join(dir, 'few-inodes')
      await mkdir(real)
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,nr_inodes=20', 'tmpfs', real])
      try {
        await mkdir(join(real, 'tree'))
        const err = await cutThroughFd(real)
        expect(err).toBeInstanceOf(NoSpaceError)
        expect(err).toMatchObject({ code: 'NO_SPACE' })
        expect((err as Error).message).toMatch(
          new RegExp(`^no space \\(or no free inodes\\) left creating ${real}/tree/f\\d+\\.bin: `),
        )
        expect((err as Error).message).toContain('df -i')
        // Some were cut before the inodes ran out: the limit, not a failure to start, stopped it.
        expect((await readdir(join(real, 'tree'))).length).toBeGreaterThan(0)
      } finally {
        execFileSync('umount', ['-l', real])
      }
    },
  )
})
