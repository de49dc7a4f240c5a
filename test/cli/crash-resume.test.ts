import { appendFile, copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { unsealJournal } from '../support/crash.ts'
import { sha256File } from '../support/files.ts'
import { type Event, events, run, useSentFile } from './run.ts'

const MiB = 1024 * 1024
/** Above journal.minBytes, so an interrupted fetch keeps a journal. */
const SIZE = 8 * MiB

describe('haul get resuming after a crash (real processes)', () => {
  const sent = useSentFile(SIZE)

  /** The sent file with a MiB of `fill` appended, as `name`, served by a `haul send` of its own. */
  async function sendGrown(name: string, fill: number): Promise<{ grown: string; ticket: string }> {
    const grown = join(sent.dir, name)
    await copyFile(sent.src, grown)
    await appendFile(grown, new Uint8Array(MiB).fill(fill))
    const sender = sent.start(['send', grown, '--json'])
    return { grown, ticket: (await sender.event('published')).ticket as string }
  }

  /** A `haul get` stopped with 2 MiB or more kept, its journal then left as a crash leaves one. */
  async function crashed(name: string): Promise<string> {
    const dest = join(sent.dir, name)
    const get = sent.start(['get', sent.ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await get.event('progress', (e) => (e.bytesDone as number) >= 2 * MiB)
    expect(await get.stop('SIGINT')).toBe(130)
    await unsealJournal(dest)
    return dest
  }

  it('--json: `checking` events from nothing to the kept chunks, before the rest is fetched', async () => {
    const dest = await crashed('json.bin')
    const r = await run(['get', sent.ticket, '-o', dest, '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const evs = events(r.stdout)
    expect(evs[0]).toMatchObject({ event: 'resuming', mode: 'journal', reason: 'unclean-stop' })
    const { chunksKept, bytesKept } = evs[0] as Event & { chunksKept: number; bytesKept: number }
    expect(chunksKept).toBeGreaterThan(0)
    const checks = evs.filter((e) => e.event === 'checking')
    // As in `progress`, etaSeconds is absent until there is a rate.
    expect(Object.keys(checks.at(-1)!).sort()).toEqual([
      'bytesChecked',
      'bytesToCheck',
      'chunksChecked',
      'chunksToCheck',
      'elapsedSeconds',
      'etaSeconds',
      'event',
      'rate',
    ])
    expect(checks[0]).toMatchObject({
      bytesChecked: 0,
      chunksChecked: 0,
      chunksToCheck: chunksKept,
      bytesToCheck: bytesKept,
    })
    expect(checks.at(-1)).toMatchObject({
      bytesChecked: bytesKept,
      bytesToCheck: bytesKept,
      chunksChecked: chunksKept,
      chunksToCheck: chunksKept,
      etaSeconds: 0,
    })
    // The check comes first; the fetch's own progress follows it.
    const firstProgress = evs.findIndex((e) => e.event === 'progress')
    expect(evs.findLastIndex((e) => e.event === 'checking')).toBeLessThan(firstProgress)
    expect(evs.at(-1)).toMatchObject({
      event: 'done',
      fetchedBytes: SIZE - bytesKept,
      resume: { mode: 'journal', reason: 'unclean-stop', chunksKept, bytesKept },
    })
    expect(await sha256File(dest)).toBe(sent.digest)
  })

  it('human output: what the check read once it is done, and what was kept in the summary', async () => {
    const dest = await crashed('human.bin')
    const r = await run(['get', sent.ticket, '-o', dest])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const lines = r.stdout.trim().split('\n')
    const at = (re: RegExp): number => lines.findIndex((l) => re.test(l))
    expect(at(/^resuming: .* did not stop cleanly: checking them/)).toBe(0)
    expect(at(/^checked \d+\.\d MiB \(\d+ chunks\) in \d+:\d\d at \d+\.\d MiB\/s$/)).toBe(1)
    expect(at(/^resumed \(journal\): kept \d+ chunks/)).toBeGreaterThan(1)
    expect(await sha256File(dest)).toBe(sent.digest)
  })

  it('the file grew at its sender: `get --force` of its new ticket over what the old one left says it checks those chunks, and keeps the ones that match', async () => {
    const dest = join(sent.dir, 'grown.bin')
    const old = sent.start(['get', sent.ticket, '-o', dest, '--max-rate', '1M', '--json'])
    await old.event('progress', (e) => (e.bytesDone as number) >= 2 * MiB)
    expect(await old.stop('SIGINT')).toBe(130)
    const { grown, ticket } = await sendGrown('grown-src.bin', 1)
    const r = await run(['get', ticket, '-o', dest, '--force'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(
      /^resuming: .*grown\.bin\.part held chunks of another content .*: checking them against this content id, keeping those that match$/,
    )
    expect(lines.find((l) => l.startsWith('resumed'))).toMatch(/^resumed \(rehash\): kept [1-9]\d* chunks/)
    expect(await sha256File(dest)).toBe(await sha256File(grown))
  })

  it('`get --force` of a new version over the whole old file here: says it checks the file, keeps what still matches, and fetches the rest', async () => {
    const dest = join(sent.dir, 'old-version.bin')
    expect((await run(['get', sent.ticket, '-o', dest])).code).toBe(0)
    const { grown, ticket } = await sendGrown('new-version.bin', 2)
    const r = await run(['get', ticket, '-o', dest, '--force'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(
      /^.*old-version\.bin holds other data \(--force\): checking its chunks against the content id, keeping every chunk that still matches$/,
    )
    expect(lines).toContain('kept 8 chunks (8.0 MiB) of the file that was here, which still match')
    expect(lines.at(-1)).toMatch(/every chunk verified; fetched 1\.0 MiB in/)
    expect(await sha256File(dest)).toBe(await sha256File(grown))
  })
})
