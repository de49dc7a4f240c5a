/**
 * Local file safety: whoever can write the destination folder plants entries under the names a
 * fetch uses (`<dest>.part`, `.part.journal` and its `.tmp`, `.part.lock`, `.part.leaves`), or
 * points `<dest>` itself at something that is not a file. No fetch writes, truncates, creates or
 * removes anything outside the destination folder, and each refusal is a typed error that says
 * what to do.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, link, lstat, mkdir, readFile, symlink, writeFile as writeText } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine, type HaulError } from '../../src/index.ts'
import { failure } from '../support/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { treeState } from './support/local-tree.ts'

const MiB = 1024 * 1024
const isRoot = process.getuid?.() === 0

describe('entries planted beside the destination', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine
  let ticket: string
  let srcHash: string
  /** Files the attacker wants haul to overwrite: outside the destination folder. */
  let outside: string
  let victim: string
  let dl: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-local-'))
    // Over journal.minBytes (4 MiB), so the fetch keeps a journal file.
    const src = join(dir, 'src.bin')
    await writeFile(src, 6 * MiB + 123, 'random')
    srcHash = await sha256File(src)
    sender = await createEngine({ workers: 1 })
    ticket = (await sender.publish(src)).ticket
    receiver = await createEngine({ workers: 1, retry: { maxAttempts: 2, baseDelayMs: 10 } })
    outside = join(dir, 'outside')
    dl = join(dir, 'dl')
    await mkdir(outside)
    await mkdir(dl)
    victim = join(outside, 'victim.txt')
    await writeText(victim, 'the user’s precious notes\n')
  })
  afterAll(async () => {
    await receiver.stop()
    await sender.stop()
    await cleanup()
  })

  /** Fetches to `dest` (with `opts`), expects `code`, and checks that `outside` is untouched. */
  async function refused(dest: string, code: string, opts: Parameters<Engine['fetch']>[2] = {}) {
    const before = await treeState(outside)
    const err = await failure(receiver.fetch(ticket, dest, opts).result)
    expect(err.code, err.message).toBe(code)
    expect(await treeState(outside)).toEqual(before)
    expect(existsSync(dest)).toBe(false)
    return err
  }

  for (const suffix of ['.part', '.part.journal', '.part.journal.tmp', '.part.lock']) {
    it(`a symlink at <dest>${suffix} to a file outside: DESTINATION_INVALID, the file byte-identical, the link left for the user`, async () => {
      const dest = join(dl, `link${suffix.replaceAll('.', '-')}.bin`)
      await symlink(victim, `${dest}${suffix}`)
      const err = await refused(dest, 'DESTINATION_INVALID')
      expect(err.message).toContain(`${dest}${suffix}`)
      expect(err.message).toMatch(/symbolic link/)
      expect(err.message).toMatch(/remove it/)
      expect((await lstat(`${dest}${suffix}`)).isSymbolicLink()).toBe(true)
    })
  }

  it('a dangling symlink at <dest>.part: nothing is created where it points', async () => {
    const dest = join(dl, 'dangling.bin')
    const target = join(outside, 'created-by-haul')
    await symlink(target, `${dest}.part`)
    await refused(dest, 'DESTINATION_INVALID')
    expect(existsSync(target)).toBe(false)
  })

  it('a hard link at <dest>.part to a file outside: refused, the file byte-identical', async () => {
    const dest = join(dl, 'hardlink.bin')
    await link(victim, `${dest}.part`)
    const err = await refused(dest, 'DESTINATION_INVALID')
    expect(err.message).toMatch(/hard links/)
  })

  it('a FIFO at <dest>.part or <dest>.part.lock: refused at once, never opened for reading', async () => {
    for (const suffix of ['.part', '.part.lock']) {
      const dest = join(dl, `fifo${suffix.replaceAll('.', '-')}.bin`)
      execFileSync('mkfifo', [`${dest}${suffix}`])
      const t0 = performance.now()
      const err = await refused(dest, 'DESTINATION_INVALID')
      expect(err.message).toMatch(/named pipe/)
      expect(performance.now() - t0).toBeLessThan(10_000)
    }
  })

  it.skipIf(!isRoot)(
    '<dest>.part owned by another user: PERMISSION_DENIED, the file unchanged (its owner could change a verified file)',
    async () => {
      const dest = join(dl, 'theirs.bin')
      await writeText(`${dest}.part`, 'planted by uid 65534\n')
      await chown(`${dest}.part`, 65534, 65534)
      const err = await refused(dest, 'PERMISSION_DENIED')
      expect(err.message).toMatch(/another user/)
      expect(await readFile(`${dest}.part`, 'utf8')).toBe('planted by uid 65534\n')
    },
  )

  it('a symlink at <dest>.part.leaves (multi-peer fetch): DESTINATION_INVALID, its target byte-identical', async () => {
    const dest = join(dl, 'swarm.bin')
    await symlink(victim, `${dest}.part.leaves`)
    const err = await refused(dest, 'DESTINATION_INVALID', { swarm: true })
    expect(err.message).toContain(`${dest}.part.leaves`)
    // The same fetch with the link gone completes.
    execFileSync('rm', [`${dest}.part.leaves`])
    await receiver.fetch(ticket, dest, { swarm: true }).result
    expect(await sha256File(dest)).toBe(srcHash)
  })
})

describe('what <dest> itself may be, even with overwrite', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine
  let ticket: string
  let srcHash: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-local-dest-'))
    const src = join(dir, 'src.bin')
    await writeFile(src, 2 * MiB + 7, 'random')
    srcHash = await sha256File(src)
    sender = await createEngine({ workers: 1 })
    ticket = (await sender.publish(src)).ticket
    receiver = await createEngine({ workers: 1, retry: { maxAttempts: 2, baseDelayMs: 10 } })
  })
  afterAll(async () => {
    await receiver.stop()
    await sender.stop()
    await cleanup()
  })

  async function refusedWithOverwrite(dest: string, code: string): Promise<HaulError> {
    const before = await treeState(dir)
    const err = await failure(receiver.fetch(ticket, dest, { overwrite: true }).result)
    expect(err.code, err.message).toBe(code)
    const after = await treeState(dir)
    // Nothing fetched, nothing created or changed: no part file, no journal, no lock left.
    expect(after).toEqual(before)
    return err
  }

  it('a FIFO: DESTINATION_INVALID, still a FIFO', async () => {
    const dest = join(dir, 'pipe')
    execFileSync('mkfifo', [dest])
    const err = await refusedWithOverwrite(dest, 'DESTINATION_INVALID')
    expect(err.message).toMatch(/named pipe.*only regular files/)
    expect((await lstat(dest)).isFIFO()).toBe(true)
  })

  it('a socket: DESTINATION_INVALID, still a socket', async () => {
    const dest = join(dir, 'sock')
    const server = createServer()
    await new Promise<void>((r) => server.listen(dest, r))
    try {
      await refusedWithOverwrite(dest, 'DESTINATION_INVALID')
      expect((await lstat(dest)).isSocket()).toBe(true)
    } finally {
      server.close()
    }
  })

  it.skipIf(!isRoot)(
    'a character device like /dev/null: DESTINATION_INVALID, the node unchanged',
    async () => {
      const dest = join(dir, 'null-dev')
      execFileSync('mknod', [dest, 'c', '1', '3'])
      const rdev = (await lstat(dest)).rdev
      const err = await refusedWithOverwrite(dest, 'DESTINATION_INVALID')
      expect(err.message).toMatch(/character device/)
      const s = await lstat(dest)
      expect(s.isCharacterDevice()).toBe(true)
      expect(s.rdev).toBe(rdev)
    },
  )

  it('a directory: DESTINATION_INVALID', async () => {
    const dest = join(dir, 'a-folder')
    await mkdir(dest)
    await refusedWithOverwrite(dest, 'DESTINATION_INVALID')
  })

  it('a file with no write permission at all (mode 0444): PERMISSION_DENIED, even for root; kept as it was', async () => {
    const dest = join(dir, 'read-only.txt')
    await writeText(dest, 'keep me read-only\n', { mode: 0o444 })
    const err = await refusedWithOverwrite(dest, 'PERMISSION_DENIED')
    expect(err.message).toMatch(/read-only.*chmod u\+w/)
    expect(await readFile(dest, 'utf8')).toBe('keep me read-only\n')
  })

  it('a symlink, with overwrite: the link itself is replaced, what it points to is untouched', async () => {
    const target = join(dir, 'pointed-at.txt')
    await writeText(target, 'not yours\n')
    const dest = join(dir, 'a-link')
    await symlink(target, dest)
    await receiver.fetch(ticket, dest, { overwrite: true }).result
    expect((await lstat(dest)).isFile()).toBe(true)
    expect(await sha256File(dest)).toBe(srcHash)
    expect(await readFile(target, 'utf8')).toBe('not yours\n')
  })
})
