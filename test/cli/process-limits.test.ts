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

  it('out of descriptors while loading a part of haul it imports when needed: TOO_MANY_OPEN_FILES, not INTERNAL', async () => {
    // Below some limit Node itself cannot start; above it, `haul get` of a folder imports chunks of
    // the bundle as it needs them (dist/bundle/get-….js, get-folder-….js), and one of them is the
    // first file that cannot be opened under some limit in this range (which one depends on what
    // this machine's Node opens at its start).
    const runs = await Promise.all(
      Array.from({ length: 11 }, (_, i) => 20 + i).map(async (n) => ({
        n,
        ...(await getUnder(`-n ${n}`, join(dir, `fds-${n}`))),
      })),
    )
    const loading = runs.flatMap((r) =>
      r.events
        .filter((e) => e.event === 'error' && String(e.message).includes('/dist/bundle/'))
        .map((e): Event & { n: number } => ({ ...e, n: r.n })),
    )
    expect(loading.length, JSON.stringify(runs)).toBeGreaterThan(0)
    for (const f of loading) {
      expect(f, `ulimit -n ${f.n}`).toMatchObject({ code: 'TOO_MANY_OPEN_FILES' })
      expect(String(f.message)).toMatch(
        /\/dist\/bundle\/[^ ]+\.js: too many open files \(EMFILE\): raise the limit of open files \(`ulimit -n`\)/,
      )
    }
  })
})
