import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, writeFile } from '../support/files.ts'
import { bin, type Ran, ranOf } from './run.ts'

/** Runs `haul <args>` from a folder deleted before it starts (`mkdir d; cd d; rmdir ../d`), killed after 20 s. */
function runFromDeletedFolder(parent: string, args: string[]): Promise<Ran> {
  const quoted = [process.execPath, bin, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  return ranOf(
    spawn('sh', ['-c', `mkdir gone && cd gone && rmdir ../gone && exec ${quoted}`], {
      cwd: parent,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 20_000,
    }),
  )
}

describe('haul in a hostile environment (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, 1024 * 1024, 'random')
  })
  afterAll(() => cleanup())

  it('run from a deleted folder, every command says so (exit 2) instead of hanging or ending silently', async () => {
    const said =
      /^error \[INVALID_ARGUMENT\]: the current folder no longer exists .*: cd to an existing folder and run haul again\n$/
    for (const args of [
      ['index', src],
      ['send', src],
      ['get', 'haul1x', '-o', join(dir, 'x.bin')],
      ['get', 'haul1x', '-o', 'relative.bin'],
    ]) {
      const r = await runFromDeletedFolder(dir, args)
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(said)
      expect(r.stdout).toBe('')
    }
    // --version and --help need no folder.
    expect((await runFromDeletedFolder(dir, ['--version'])).code).toBe(0)
  })
})
