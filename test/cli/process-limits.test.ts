import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, writeFile } from '../support/files.ts'
import { bin, type Event, events, Running, ranOf } from './run.ts'

/** `haul get` under the shell's limits of one process (`ulimit`): each one reported as its own typed error. */
describe('haul get under a small ulimit (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Running
  let ticket: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-limits-'))
    const folder = join(dir, 'folder')
    await mkdir(folder)
    for (let i = 0; i < 40; i++) await writeFile(join(folder, `f${i}.bin`), 2000, 'random', i)
    await writeFile(join(folder, 'big.bin'), 3 * 1024 * 1024, 'random', 99)
    sender = new Running([
      'send',
      folder,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--data-dir',
      join(dir, 'data'),
      '--json',
    ])
    ticket = (await sender.event('published')).ticket as string
  })
  afterAll(async () => {
    sender?.kill()
    await cleanup()
  })

  /** `haul get <ticket> -o <out> --json` after `ulimit <limit>`: its exit code and events. */
  async function getUnder(
    limit: string,
    out: string,
  ): Promise<{ code: number; events: Event[]; stderr: string }> {
    const child = spawn(
      'bash',
      [
        '-c',
        `ulimit ${limit} && exec "$0" "$@"`,
        process.execPath,
        bin,
        'get',
        ticket,
        '-o',
        out,
        '--json',
        '--workers',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const r = await ranOf(child)
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'))
    return { code: r.code, events: lines.length === 0 ? [] : events(lines.join('\n')), stderr: r.stderr }
  }

  it('a file larger than the file-size limit (ulimit -f) is FILE_TOO_LARGE saying so and what to do, not NO_SPACE', async () => {
    const r = await getUnder('-f 1024', join(dir, 'small-files'))
    expect(r.code).toBe(1)
    const error = r.events.find((e) => e.event === 'error')
    expect(error).toMatchObject({ code: 'FILE_TOO_LARGE' })
    expect(error?.message).toContain(
      `${dir}/small-files/.haul-incoming/pack.part: the file is larger than this process's file-size limit (EFBIG; \`ulimit -f\`: 1048576 bytes): raise it (\`ulimit -f unlimited\`)`,
    )
  })
})
