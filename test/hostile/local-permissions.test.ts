/**
 * A read-only destination stays read-only: `haul get --force` run by an ordinary user (nobody;
 * root bypasses permissions) does not rename a new file over a file that user may not write,
 * although the folder's permissions would let the rename through.
 */
import { chmod, chown, mkdir, readFile, stat, writeFile as writeText } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../../src/index.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { jsonEvents, runCli } from './support/local-cli.ts'

const MiB = 1024 * 1024
const NOBODY = 65534
const isRoot = process.getuid?.() === 0

describe.skipIf(!isRoot)('haul get --force as an ordinary user (nobody)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let ticket: string
  let srcHash: string
  let home: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-local-perm-'))
    await chmod(dir, 0o755) // let nobody reach it
    const src = join(dir, 'src.bin')
    await writeFile(src, MiB + 5, 'random')
    srcHash = await sha256File(src)
    sender = await createEngine({ workers: 1 })
    ticket = (await sender.publish(src)).ticket
    // A folder nobody owns: every rename in it is allowed to nobody.
    home = join(dir, 'nobody-home')
    await mkdir(home)
    await chown(home, NOBODY, NOBODY)
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  const get = (dest: string) =>
    runCli(['get', ticket, '-o', dest, '--force', '--json', '--workers', '1'], { uid: NOBODY, gid: NOBODY })

  it('its own file made read-only (chmod a-w): PERMISSION_DENIED naming chmod; content and mode kept', async () => {
    const dest = join(home, 'mine.txt')
    await writeText(dest, 'my read-only notes\n', { mode: 0o444 })
    await chown(dest, NOBODY, NOBODY)
    const r = await get(dest)
    expect(r.code, r.stderr.toString()).toBe(1)
    const e = jsonEvents(r).at(-1)!
    expect(e).toMatchObject({ event: 'error', code: 'PERMISSION_DENIED' })
    expect(String(e.message)).toMatch(/read-only.*chmod u\+w/)
    expect(await readFile(dest, 'utf8')).toBe('my read-only notes\n')
    expect((await stat(dest)).mode & 0o777).toBe(0o444)
  }, 60_000)

  it("another user's file it may not write (root's, 0644): PERMISSION_DENIED, unchanged", async () => {
    const dest = join(home, 'roots.txt')
    await writeText(dest, 'root wrote this\n', { mode: 0o644 })
    const r = await get(dest)
    expect(r.code, r.stderr.toString()).toBe(1)
    expect(jsonEvents(r).at(-1)).toMatchObject({ event: 'error', code: 'PERMISSION_DENIED' })
    expect(await readFile(dest, 'utf8')).toBe('root wrote this\n')
    expect((await stat(dest)).uid).toBe(0)
  }, 60_000)

  it('a folder holding files their owner may not read (modes 000, 100, 200): fetched, each with its mode', async () => {
    const folder = join(dir, 'unreadable')
    await mkdir(folder)
    const modes = [0o000, 0o100, 0o200]
    for (const m of modes) {
      await writeText(join(folder, `f${m.toString(8)}`), `mode ${m.toString(8)}\n`)
      await chmod(join(folder, `f${m.toString(8)}`), m)
    }
    const folderTicket = (await sender.publishCollection(folder)).ticket
    const out = join(home, 'unreadable-copy')
    const r = await runCli(['get', folderTicket, '-o', out, '--json', '--workers', '1'], {
      uid: NOBODY,
      gid: NOBODY,
    })
    expect(r.code, r.stderr.toString() + r.stdout.toString()).toBe(0)
    for (const m of modes) {
      const f = join(out, `f${m.toString(8)}`)
      expect((await stat(f)).mode & 0o777).toBe(m)
      expect(await readFile(f, 'utf8')).toBe(`mode ${m.toString(8)}\n`)
    }
  }, 60_000)

  it('--force into its own copy of a folder whose subfolder is read-only (555): the changed file replaced, the mode kept', async () => {
    const folder = join(dir, 'ro-sub')
    await mkdir(join(folder, 'r'), { recursive: true })
    await writeText(join(folder, 'r', 'f1'), 'original\n')
    await chmod(join(folder, 'r'), 0o555)
    const folderTicket = (await sender.publishCollection(folder)).ticket
    const out = join(home, 'ro-sub-copy')
    const as = { uid: NOBODY, gid: NOBODY }
    const first = await runCli(['get', folderTicket, '-o', out, '--json', '--workers', '1'], as)
    expect(first.code, first.stderr.toString()).toBe(0)
    expect((await stat(join(out, 'r'))).mode & 0o777).toBe(0o555)
    await writeText(join(out, 'r', 'f1'), 'changed by its owner\n') // root writes; nobody owns it
    const r = await runCli(['get', folderTicket, '-o', out, '--force', '--json', '--workers', '1'], as)
    expect(r.code, r.stderr.toString() + r.stdout.toString()).toBe(0)
    expect(await readFile(join(out, 'r', 'f1'), 'utf8')).toBe('original\n')
    expect((await stat(join(out, 'r'))).mode & 0o777).toBe(0o555)
  }, 60_000)

  it('its own writable file: replaced, as --force says (the rule is about permissions, not about nobody)', async () => {
    const dest = join(home, 'writable.txt')
    await writeText(dest, 'replace me\n', { mode: 0o644 })
    await chown(dest, NOBODY, NOBODY)
    const r = await get(dest)
    expect(r.code, r.stderr.toString() + r.stdout.toString()).toBe(0)
    expect(await sha256File(dest)).toBe(srcHash)
  }, 60_000)
})
