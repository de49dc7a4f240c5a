import { execFileSync, spawn } from 'node:child_process'
import { chmod, mkdir, readdir, rm, symlink, writeFile as write } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { bytes, treeOf } from '../support/tree.ts'
import { events, Running, run } from './run.ts'

const MiB = 1024 * 1024

/** `haul send <folder>` and `haul get` between real processes, as a user runs them. */
describe('folders and names from the command line (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const procs: Running[] = []
  const start = (args: string[], cwd?: string): Running => {
    const p = new Running(args, cwd === undefined ? {} : { cwd })
    procs.push(p)
    return p
  }
  const ticketOf = async (sender: Running): Promise<string> =>
    (await sender.event('published')).ticket as string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(() => cleanup())

  it('haul send ./folder, haul get <ticket>: the folder arrives as ./<its name>, byte for byte (diff -r) with its modes', async () => {
    const src = join(dir, 'some-folder')
    await mkdir(join(src, 'docs/deep/er'), { recursive: true })
    await mkdir(join(src, 'empty'))
    await write(join(src, 'docs/readme.md'), '# hi\n')
    await write(join(src, 'docs/deep/er/blob.bin'), bytes(2 * MiB + 3, 1))
    await write(join(src, 'tool.sh'), '#!/bin/sh\n')
    await chmod(join(src, 'tool.sh'), 0o750)
    await write(join(src, 'nothing'), '')
    for (let i = 0; i < 200; i++) await write(join(src, 'docs', `n${i}.txt`), bytes(i * 37, i))
    const sender = start(['send', src, '--json', '--data-dir', join(dir, 'data')])
    const ticket = await ticketOf(sender)
    const where = join(dir, 'here')
    await mkdir(where)
    const got = await run(['get', ticket, '--json'], undefined, where)
    expect(got.code, got.stderr).toBe(0)
    const done = events(got.stdout).find((e) => e.event === 'done')!
    expect(done).toMatchObject({
      kind: 'collection',
      name: 'some-folder',
      files: 204,
      bytes: expect.any(Number),
    })
    expect(events(got.stdout).filter((e) => e.event === 'file')).toHaveLength(204)
    // How it reached the sender, as a single-file get says it.
    expect(events(got.stdout).filter((e) => e.event === 'route')).toEqual([
      { event: 'route', route: 'direct' },
    ])
    // The file list and the files: two transfers on one stream, numbered apart.
    await sender.event('transfer-started', (e) => e.transfer === 2)
    const started = sender.events.filter((e) => e.event === 'transfer-started')
    expect(started.map((e) => e.transfer)).toEqual([1, 2])
    expect(started[0]!.session).toBe(started[1]!.session)
    execFileSync('diff', ['-r', src, join(where, 'some-folder')])
    expect(await treeOf(join(where, 'some-folder'))).toEqual(await treeOf(src))
    expect(await readdir(where)).toEqual(['some-folder'])
    // Nothing was written beside the sent files.
    expect((await readdir(src)).sort()).toEqual(['docs', 'empty', 'nothing', 'tool.sh'])
    // -o <dir>/ puts it in that folder under its own name, beside what is there.
    const downloads = join(dir, 'downloads')
    await mkdir(downloads)
    await write(join(downloads, 'notes.txt'), 'mine')
    const into = await run(['get', ticket, '-o', `${downloads}/`])
    expect(into.code, into.stderr).toBe(0)
    expect((await readdir(downloads)).sort()).toEqual(['notes.txt', 'some-folder'])
    execFileSync('diff', ['-r', src, join(downloads, 'some-folder')])
  })

  it('a data folder inside the folder sent is never sent (its identity key), said as skipped; sent itself it is refused', async () => {
    const src = join(dir, 'with-data')
    await mkdir(src)
    await write(join(src, 'file.txt'), 'hello\n')
    const sender = start(['send', '.', '--json', '--data-dir', './.haul'], src)
    const published = await sender.event('published')
    expect(published.skipped).toEqual([
      { path: '.haul', why: expect.stringMatching(/data folder.*never sent/) },
    ])
    const where = join(dir, 'with-data-here')
    await mkdir(where)
    const got = await run(['get', published.ticket as string, '-o', 'copy', '--json'], undefined, where)
    expect(got.code, got.stderr).toBe(0)
    expect(await readdir(join(where, 'copy'))).toEqual(['file.txt'])
    sender.kill()
    // The key exists, and sending the data folder itself is refused.
    expect(await readdir(join(src, '.haul'))).toContain('identity.key')
    const dataDir = join(src, '.haul')
    for (const what of [dataDir, join(dataDir, 'secrets'), join(dataDir, 'identity.key')]) {
      const refused = await run(['send', what, '--data-dir', dataDir])
      expect(refused.code, what).toBe(1)
      expect(refused.stderr).toMatch(/SOURCE_INVALID.*data folder/)
    }
  })

  it('haul send a b: several files are one collection; -o names the folder; a second get finds it there; other data there needs --force', async () => {
    const a = join(dir, 'two', 'a.txt')
    const b = join(dir, 'two', 'b.txt')
    await mkdir(join(dir, 'two'))
    await write(a, 'A')
    await write(b, 'B')
    const sender = start(['send', a, b, '--json'])
    const ticket = await ticketOf(sender)
    const out = join(dir, 'pair')
    expect((await run(['get', ticket, '-o', out])).code).toBe(0)
    expect((await readdir(out)).sort()).toEqual(['a.txt', 'b.txt'])
    const again = await run(['get', ticket, '-o', out])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/already holds this folder/)
    await write(join(out, 'a.txt'), 'changed')
    const clash = await run(['get', ticket, '-o', out])
    expect(clash.code).toBe(1)
    expect(clash.stderr).toMatch(/DESTINATION_EXISTS/)
    expect((await run(['get', ticket, '-o', out, '--force'])).code).toBe(0)
    expect((await readdir(out)).sort()).toEqual(['a.txt', 'b.txt'])
  })

  it('a folder changed at its sender, fetched again with --force over the copy here: says it checks the files here, and fetches only what changed', async () => {
    const src = join(dir, 'grows')
    await mkdir(src)
    for (let i = 0; i < 8; i++) await write(join(src, `f${i}.bin`), bytes(MiB, 40 + i))
    const first = start(['send', src, '--json'])
    const out = join(dir, 'grows-copy')
    expect((await run(['get', await ticketOf(first), '-o', out])).code).toBe(0)
    first.kill()
    await write(join(src, 'f2.bin'), bytes(MiB, 99))
    const second = start(['send', src, '--json'])
    const got = await run(['get', await ticketOf(second), '-o', out, '--force'])
    expect(got.code, got.stderr).toBe(0)
    const lines = got.stdout.trim().split('\n')
    expect(lines[0]).toBe(
      'the folder is here already: checking its files against the new list, keeping every chunk that still matches',
    )
    expect(lines).toContain('kept 7.0 MiB of the files already here, fetched 1.0 MiB')
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })

  it("the sender's name for a folder never adds files to a folder already here, and a hidden name is never taken without -o", async () => {
    // A folder named as one the receiver has (its ~/.ssh, its ~/bin), holding a file it does not.
    const home = join(dir, 'home')
    await mkdir(join(home, 'bin'), { recursive: true })
    await write(join(home, 'bin', 'mine'), 'mine')
    const src = join(dir, 'offered')
    await mkdir(join(src, 'bin'), { recursive: true })
    await write(join(src, 'bin', 'ls'), '#!/bin/sh\necho planted\n')
    const bin = start(['send', join(src, 'bin'), '--json'])
    const binTicket = await ticketOf(bin)
    const refused = await run(['get', binTicket], undefined, home)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('DESTINATION_EXISTS')
    expect(refused.stderr).toContain('is not an earlier copy of this folder')
    expect(await readdir(join(home, 'bin'))).toEqual(['mine'])
    // Into a folder given with a trailing slash the name is still the sender's: refused too.
    expect((await run(['get', binTicket, '-o', `${home}/`])).code).toBe(1)
    expect(await readdir(join(home, 'bin'))).toEqual(['mine'])
    // Named by the user, the folder is added to.
    expect((await run(['get', binTicket, '-o', join(home, 'bin')])).code).toBe(0)
    expect((await readdir(join(home, 'bin'))).sort()).toEqual(['ls', 'mine'])

    // Hidden names: a folder (.ssh) and a file (.bash_aliases), refused by name alone.
    await mkdir(join(src, '.ssh'))
    await write(join(src, '.ssh', 'authorized_keys'), 'ssh-ed25519 AAAA planted')
    await write(join(src, '.bash_aliases'), 'alias ls=planted')
    for (const hidden of ['.ssh', '.bash_aliases']) {
      const sender = start(['send', join(src, hidden), '--json'])
      const ticket = await ticketOf(sender)
      const got = await run(['get', ticket], undefined, home)
      expect(got.code).toBe(1)
      expect(got.stderr).toContain('DESTINATION_INVALID')
      expect(got.stderr).toContain(
        `a hidden name haul does not take from a ticket: give it one with -o <path> (-o ${hidden} keeps that name)`,
      )
      expect(await readdir(home)).not.toContain(hidden)
      expect((await run(['get', ticket, '-o', join(home, hidden)])).code).toBe(0)
    }
    expect((await readdir(home)).sort()).toEqual(['.bash_aliases', '.ssh', 'bin'])
  })

  it("a file whose name leaves no room for haul's working files beside it is saved under its name cut short, its extension kept", async () => {
    const name = `${'é'.repeat(60)}${'n'.repeat(125)}.tar.gz`
    expect(Buffer.byteLength(name)).toBe(252)
    const src = join(dir, name)
    await writeFile(src, MiB + 11, 'random')
    const sender = start(['send', src, '--json'])
    const where = join(dir, 'long-name')
    await mkdir(where)
    const got = await run(['get', await ticketOf(sender)], undefined, where)
    expect(got.code, got.stderr).toBe(0)
    const [saved] = await readdir(where)
    expect(Buffer.byteLength(saved!)).toBeLessThanOrEqual(255 - '.part.journal.tmp'.length)
    expect(saved!.endsWith('.gz')).toBe(true)
    expect(name.startsWith(saved!.slice(0, -'.gz'.length))).toBe(true)
    expect(got.stdout).toContain(
      `the sender's name for it is 252 bytes, more than fits beside haul's working files`,
    )
    expect(await sha256File(join(where, saved!))).toBe(await sha256File(src))
  })

  it("haul send shows a file's own name with its control characters escaped, on one line", async () => {
    const src = join(dir, 'ev\nil\x1b[31m.txt')
    await write(src, 'x')
    const sender = start(['send', src, '--listen', '/ip4/127.0.0.1/tcp/0'])
    const line = await sender.line(/^serving /)
    expect(line).toBe(`serving ${join(dir, 'ev\\x0ail\\x1b[31m.txt')} (1 B, 1 chunk)`)
  })

  it('a single file keeps its name: ./<name> by default, <dir>/<name> with -o <dir>/', async () => {
    const src = join(dir, 'report 2026.pdf')
    await writeFile(src, 1 * MiB + 7, 'random')
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    const where = join(dir, 'cwd')
    await mkdir(where)
    expect((await run(['get', ticket], undefined, where)).code).toBe(0)
    expect(await sha256File(join(where, 'report 2026.pdf'))).toBe(await sha256File(src))
    await mkdir(join(dir, 'into'))
    expect((await run(['get', ticket, '-o', `${join(dir, 'into')}/`])).code).toBe(0)
    expect(await sha256File(join(dir, 'into', 'report 2026.pdf'))).toBe(await sha256File(src))
  })

  it('kill -9 during the folder fetch, then the same command: it resumes and the folder arrives whole', async () => {
    const src = join(dir, 'big-folder')
    await mkdir(src)
    for (let i = 0; i < 24; i++) await write(join(src, `part-${i}.bin`), bytes(MiB + i, 100 + i))
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    const out = join(dir, 'resumed')
    const started = performance.now()
    const slow = start(['get', ticket, '-o', out, '--json', '--max-rate', '2M'])
    await slow.event('progress', (e) => e.phase === 'fetching' && (e.bytesDone as number) >= 10 * MiB)
    // The journal syncs at least every journal.flushIntervalMs (2 s) while chunks arrive.
    while (performance.now() - started < 3000) await new Promise((r) => setTimeout(r, 100))
    slow.proc.kill('SIGKILL')
    await slow.exited
    expect(await readdir(out)).toEqual(['.haul-incoming'])
    const again = await run(['get', ticket, '-o', out, '--json'])
    expect(again.code, again.stderr).toBe(0)
    // Said before the pack's progress, as for a single file.
    const evs = events(again.stdout)
    const at = evs.findIndex((e) => e.event === 'resuming')
    expect(evs[at]).toMatchObject({ event: 'resuming', mode: 'journal' })
    expect(evs[at]?.bytesKept).toBeGreaterThan(0)
    expect(evs.slice(0, at).filter((e) => e.event === 'progress' && (e.bytesDone as number) > 0)).toEqual([])
    const done = events(again.stdout).find((e) => e.event === 'done')!
    expect(done.resumed, JSON.stringify(done)).toBe(true)
    expect((done.resume as { bytesKept: number }).bytesKept, JSON.stringify(done)).toBeGreaterThan(0)
    execFileSync('diff', ['-r', src, out])
  })

  it('kill -9 once every file is cut out of the pack and the pack deleted, before the files are synced: the same command re-hashes them and fetches nothing', async () => {
    const src = join(dir, 'cut-folder')
    await mkdir(src)
    for (let i = 0; i < 200; i++) await write(join(src, `f-${i}.bin`), bytes(256 * 1024 + i, 300 + i))
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    /** `haul get` into `out`, killed once the pack is deleted; then the same command again. */
    const killedOnceCut = async (out: string, meanwhile?: (tree: string) => Promise<void>) => {
      const stage = join(out, '.haul-incoming')
      const getting = start(['get', ticket, '-o', out, '--json'])
      // The pack goes once every file is cut out of it; the files are synced after.
      let sawPack = false
      for (;;) {
        const names = await readdir(stage).catch(() => [] as string[])
        if (names.some((n) => n.startsWith('pack'))) sawPack = true
        else if (sawPack && names.includes('tree')) break
        if (getting.proc.exitCode !== null) throw new Error('the get ended before its pack was deleted')
        await new Promise((r) => setTimeout(r, 1))
      }
      getting.proc.kill('SIGKILL')
      await getting.exited
      await meanwhile?.(join(stage, 'tree'))
      const again = await run(['get', ticket, '-o', out, '--json'])
      expect(again.code, again.stderr).toBe(0)
      execFileSync('diff', ['-r', src, out])
      return events(again.stdout).find((e) => e.event === 'done')!
    }
    const kept = await killedOnceCut(join(dir, 'cut-out'))
    // No pack fetched (its `resume` would say how it was): the files were kept.
    expect(kept, JSON.stringify(kept)).toMatchObject({ resumed: true, present: false })
    expect(kept.resume, JSON.stringify(kept)).toBeUndefined()
    // A file of the tree damaged meanwhile (or lost with the power): the pack is fetched again.
    const refetched = await killedOnceCut(join(dir, 'cut-out-2'), (tree) =>
      write(join(tree, 'f-7.bin'), bytes(256 * 1024 + 7, 999)),
    )
    expect(refetched.resume, JSON.stringify(refetched)).toMatchObject({ mode: 'fresh' })
  })

  it('Ctrl-C during a folder get exits 130 and says how to resume', async () => {
    const src = join(dir, 'slow-folder')
    await mkdir(src)
    await write(join(src, 'x.bin'), bytes(16 * MiB, 7))
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    const slow = start(['get', ticket, '-o', join(dir, 'ctrlc'), '--max-rate', '1M'])
    // The progress line goes to stderr (every 2 s when not a terminal): Ctrl-C once the pack is coming.
    while (!/%/.test(slow.stderr) && slow.proc.exitCode === null) await new Promise((r) => setTimeout(r, 50))
    expect(await slow.stop('SIGINT')).toBe(130)
    expect(slow.lines.join('\n')).toMatch(/run the same command again to resume/)
  })

  it('Ctrl-C while the list of files arrives says nothing was kept (no promise of a resume)', async () => {
    const src = join(dir, 'many-names')
    await mkdir(src)
    for (let i = 0; i < 400; i++) await write(join(src, `a-rather-long-file-name-${i}.txt`), `${i}`)
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    // The manifest (~20 KB) at 1 KiB/s: Ctrl-C as its first progress line shows.
    const slow = start(['get', ticket, '-o', join(dir, 'names'), '--max-rate', '1k'])
    while (!/list of files/.test(slow.stderr) && slow.proc.exitCode === null)
      await new Promise((r) => setTimeout(r, 50))
    expect(await slow.stop('SIGINT')).toBe(130)
    expect(slow.lines.join('\n')).toMatch(/interrupted while fetching the list of files: nothing was kept/)
    expect(await readdir(dir)).not.toContain('names')
  })

  it("kill -9 while the list of files arrives leaves its temporary folder; the next folder get removes it, never a live process's", async () => {
    const src = join(dir, 'many-names-killed')
    await mkdir(src)
    for (let i = 0; i < 400; i++) await write(join(src, `a-rather-long-file-name-${i}.txt`), `${i}`)
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    const tmp = join(dir, 'tmp-of-gets')
    await mkdir(tmp)
    const env = { ...process.env, TMPDIR: tmp }
    const ownedBy = async (pid: number | undefined): Promise<string[]> =>
      (await readdir(tmp)).filter((n) => n.startsWith(`haul-manifest-${pid}-`))
    // The manifest (~20 KB) at 1 KiB/s: killed once its temporary folder is there.
    const slow = new Running(['get', ticket, '-o', join(dir, 'killed-names'), '--max-rate', '1k'], { env })
    procs.push(slow)
    let left: string[] = []
    while (left.length === 0 && slow.proc.exitCode === null) {
      left = await ownedBy(slow.proc.pid)
      await new Promise((r) => setTimeout(r, 20))
    }
    slow.proc.kill('SIGKILL')
    await slow.exited
    expect(left).toHaveLength(1)
    expect(await ownedBy(slow.proc.pid)).toEqual(left)
    // A process that has exited, and one alive (the sender): only the first one's folder goes.
    const gone = execFileSync(process.execPath, ['-p', 'process.pid'], { encoding: 'utf8' }).trim()
    await mkdir(join(tmp, `haul-manifest-${gone}-planted`))
    await mkdir(join(tmp, `haul-manifest-${sender.proc.pid}-planted`))
    const r = await run(['get', ticket, '-o', join(dir, 'names-after-kill'), '--json'], env)
    expect(r.code, r.stderr).toBe(0)
    // (Node keeps its compile cache there too.)
    const haul = (await readdir(tmp)).filter((n) => n.startsWith('haul-'))
    expect(haul).toEqual([`haul-manifest-${sender.proc.pid}-planted`])
  })

  it('a folder another process is writing: haul get fails DESTINATION_BUSY without asking for the list of files; --wait waits, and Ctrl-C then says nothing was written', async () => {
    const src = join(dir, 'busy-folder')
    await mkdir(src)
    for (let i = 0; i < 20; i++) await write(join(src, `f${i}`), bytes(1000 + i, i))
    const sender = start(['send', src, '--json'])
    const published = await sender.event('published')
    const ticket = published.ticket as string
    const dest = join(dir, 'busy-folder-out')
    await mkdir(join(dest, '.haul-incoming'), { recursive: true })
    // Another process holds the folder's lock, as a running haul get of it would.
    const lockModule = new URL('../../src/storage/dest-lock.ts', import.meta.url).pathname
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { DestinationLock } = await import(${JSON.stringify(lockModule)}); await DestinationLock.acquire(${JSON.stringify(join(dest, '.haul-incoming', 'collection'))}); console.log('held'); setInterval(() => {}, 1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    try {
      await new Promise<void>((resolve) =>
        createInterface({ input: holder.stdout! }).once('line', () => resolve()),
      )
      const busy = await run(['get', ticket, '-o', dest, '--json'])
      expect(busy.code).toBe(1)
      expect(events(busy.stdout).at(-1)).toMatchObject({
        event: 'error',
        code: 'DESTINATION_BUSY',
        message: expect.stringContaining(`process ${holder.pid}`),
      })
      const waiting = start(['get', ticket, '-o', dest, '--wait'])
      await waiting.line(new RegExp(`^waiting: .*busy-folder-out is being written by process ${holder.pid} `))
      expect(await waiting.stop('SIGINT')).toBe(130)
      expect(waiting.lines.join('\n')).toMatch(
        /interrupted while waiting for the fetch writing .*: nothing was written/,
      )
    } finally {
      holder.kill('SIGKILL')
    }
    const fetched = await run(['get', ticket, '-o', dest, '--json'])
    expect(fetched.code, fetched.stderr).toBe(0)
    expect(await treeOf(dest)).toEqual(await treeOf(src))
    expect(await sender.stop()).toBe(0)
    // Only the get that fetched asked for the list of files (the ticket's content).
    const asked = sender.events.filter((e) => e.event === 'transfer-started' && e.cid === published.cid)
    expect(asked).toHaveLength(1)
  })

  it('links: skipped by default, created with --symlinks; a link leaving the folder is not sent', async () => {
    const src = join(dir, 'linked')
    await mkdir(src)
    await write(join(src, 'target.txt'), 't')
    await symlink('target.txt', join(src, 'alias'))
    await symlink('/etc/hostname', join(src, 'escape'))
    const sender = start(['send', src, '--json'])
    const published = await sender.event('published')
    expect((published.skipped as Array<{ path: string }>).map((s) => s.path)).toEqual(['escape'])
    const plain = join(dir, 'nolinks')
    expect((await run(['get', published.ticket as string, '-o', plain])).code).toBe(0)
    expect(await readdir(plain)).toEqual(['target.txt'])
    const withLinks = join(dir, 'withlinks')
    expect((await run(['get', published.ticket as string, '-o', withLinks, '--symlinks'])).code).toBe(0)
    expect((await readdir(withLinks)).sort()).toEqual(['alias', 'target.txt'])
    // A file of it lost: the same get puts it back; the link there, the collection's own, is no
    // obstacle (with or without --symlinks). A file there holding other data needs --force, and
    // another link where the collection has one is replaced as an entry (never followed).
    const again = (...flags: string[]) => run(['get', published.ticket as string, '-o', withLinks, ...flags])
    await rm(join(withLinks, 'target.txt'))
    expect((await again('--symlinks')).code).toBe(0)
    await write(join(withLinks, 'target.txt'), 'other')
    expect((await again('--symlinks')).stderr).toMatch(/DESTINATION_EXISTS.*--force/)
    expect((await again('--force')).code).toBe(0)
    await rm(join(withLinks, 'alias'))
    await symlink('/etc/hostname', join(withLinks, 'alias'))
    expect((await again('--symlinks')).stderr).toMatch(/DESTINATION_EXISTS.*--force/)
    expect((await again('--symlinks', '--force')).code).toBe(0)
    const want = await treeOf(src)
    delete want.escape
    expect(await treeOf(withLinks)).toEqual(want)
  })
})
