import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { tempDir, writeFile } from '../support/files.ts'
import { type Scrape, scrape, value } from '../support/metrics.ts'
import { sleep } from '../support/wait.ts'
import { Running, run } from './run.ts'

const MiB = 1024 * 1024
const SIZE = 3 * MiB + 99
const LOOPBACK = ['--listen', '/ip4/127.0.0.1/tcp/0']

/** `--metrics` on real processes: the address printed, scraped over HTTP. */
describe('haul --metrics (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  const procs: Running[] = []
  const start = (args: string[]): Running => {
    const p = new Running(args)
    procs.push(p)
    return p
  }
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, SIZE, 'random')
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(() => cleanup())

  it('send --json names the bound address in its published event; get announces its own; the counters match', async () => {
    const sender = start(['send', src, '--json', '--metrics', '127.0.0.1:0', ...LOOPBACK])
    const published = await sender.event('published')
    const at = published.metrics as string
    expect(at).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
    const got = await run([
      'get',
      published.ticket as string,
      '-o',
      join(dir, 'copy'),
      '--json',
      '--metrics',
      '127.0.0.1:0',
      ...LOOPBACK,
    ])
    expect(got.code, got.stderr + got.stdout).toBe(0)
    const evs = got.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; address?: string })
    expect(evs.find((e) => e.event === 'metrics')?.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
    // Chunks served are reported at most every 500 ms per session: the sender catches up.
    let s: Scrape = await scrape(at)
    for (let i = 0; i < 200 && (value(s, 'haul_sent_bytes_total') ?? 0) < SIZE; i++) {
      await sleep(50)
      s = await scrape(at)
    }
    expect(value(s, 'haul_sent_bytes_total')).toBe(SIZE)
    expect(value(s, 'haul_serve_contents')).toBe(1)
    expect(await sender.stop()).toBe(0)
  })

  it('human output prints where metrics are served', async () => {
    const sender = start(['send', src, '--metrics', '127.0.0.1:0', ...LOOPBACK])
    const line = await sender.line(/^metrics: http:\/\//)
    const at = /^metrics: http:\/\/(.+)\/metrics$/.exec(line)![1]!
    expect(value(await scrape(at), 'haul_transfers_active')).toBe(0)
    expect(await sender.stop()).toBe(0)
  })

  it('a bad value is a usage error naming --metrics; a command that runs no server refuses it', async () => {
    const bad = await run(['send', src, '--metrics', '9464'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--metrics/)
    const index = await run(['index', src, '--metrics', '127.0.0.1:0'])
    expect(index.code).toBe(2)
    expect(index.stderr).toMatch(/--metrics is not an option of haul index/)
  })
})
