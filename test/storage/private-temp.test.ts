import { execFileSync } from 'node:child_process'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { privateTempDir, removeStale } from '../../src/storage/private-temp.ts'
import { tempDir } from '../support/files.ts'

describe('private temporary folders', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it("a folder of a process that is gone is removed; one of a live process, another prefix's, or not named by a pid stays", async () => {
    // A process that has exited: its pid answers no signal.
    const gone = execFileSync(process.execPath, ['-p', 'process.pid'], { encoding: 'utf8' }).trim()
    const planted = [
      `haul-check-${gone}-abc123`,
      `haul-check-${process.pid}-abc123`,
      `haul-check-${process.ppid}-abc123`,
      'haul-check-abc123',
      `haul-manifest-${gone}-abc123`,
    ]
    for (const name of planted) await mkdir(join(dir, name))
    await writeFile(join(dir, `haul-check-${gone}-file`), 'not a folder of ours')
    await removeStale('haul-check-', dir)
    expect((await readdir(dir)).sort()).toEqual(
      [
        `haul-check-${gone}-file`,
        `haul-check-${process.pid}-abc123`,
        `haul-check-${process.ppid}-abc123`,
        'haul-check-abc123',
        `haul-manifest-${gone}-abc123`,
      ].sort(),
    )
  })

  it('a new folder is named after this process', async () => {
    const made = await privateTempDir('haul-test-private-')
    expect(made).toMatch(new RegExp(`/haul-test-private-${process.pid}-[^/-]+$`))
    await rm(made, { recursive: true })
  })
})
