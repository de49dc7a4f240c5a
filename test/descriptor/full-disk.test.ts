import { execFileSync } from 'node:child_process'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DescriptorWriter, ROW_SIZE } from '../../src/descriptor/index.ts'
import { NoSpaceError } from '../../src/errors.ts'
import { tempDir } from '../support/files.ts'
import { FIXED_64K, fixedEntries } from './helpers.ts'

const isRoot = process.getuid?.() === 0

describe.skipIf(!isRoot)('a descriptor written to a full disk (mounts a tmpfs: needs root)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let mount: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-full-'))
    mount = join(dir, 'small')
    await mkdir(mount)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mount])
  })
  afterAll(async () => {
    execFileSync('umount', ['-l', mount])
    await cleanup()
  })

  it('is NO_SPACE, not a short write reported as INTERNAL, and leaves no temporary file', async () => {
    // Three of the four pages taken: the writer's first page of rows (16 KiB) fits only in part,
    // so the kernel takes what fits and says so with a short count, not an error.
    await writeFile(join(mount, 'filler'), new Uint8Array(12 * 1024))
    const pageSize = 512
    expect(pageSize * ROW_SIZE).toBeGreaterThan(4096)
    const w = await DescriptorWriter.create(join(mount, 'content.bin.haul'), {
      chunking: FIXED_64K,
      pageSize,
    })
    const fail = (async () => {
      for (const e of fixedEntries(pageSize * 2)) await w.append(e)
    })()
    const err = await fail.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(NoSpaceError)
    expect((err as Error).message).toMatch(
      /^no space left writing .*content\.bin\.haul.*; free some disk space$/,
    )
    expect(await readdir(mount)).toEqual(['filler'])
  })
})
