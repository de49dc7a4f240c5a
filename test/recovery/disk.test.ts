import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createEngine,
  DestinationInvalidError,
  type Engine,
  NoSpaceError,
  PermissionDeniedError,
} from '../../src/index.ts'
import { defaultJournalOptions, Journal, journalPath } from '../../src/storage/journal.ts'
import { spawnPeer } from '../support/children.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from '../support/fault-proxy.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { interruptedFetch } from '../support/interrupt.ts'
import { startSender } from '../support/sender.ts'

const MiB = 1024 * 1024
const isRoot = process.getuid?.() === 0
const NEEDS_ROOT = isRoot ? '' : ' — SKIPPED: needs root (mounts a tmpfs, runs a child as nobody)'

const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex')

/** Every chunk the journal vouches for holds exactly the source's bytes (fixed 1 MiB chunks). */
async function journalAgreesWithPart(dest: string, src: string): Promise<number> {
  const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
  if (loaded.status !== 'ok') throw new Error(`journal ${loaded.status}`)
  try {
    const [part, orig] = await Promise.all([readFile(`${dest}.part`), readFile(src)])
    let n = 0
    for (let i = 0; i < loaded.journal.leafCount; i++) {
      if (!loaded.journal.has(i)) continue
      n++
      expect(part.subarray(i * MiB, (i + 1) * MiB).equals(orig.subarray(i * MiB, (i + 1) * MiB))).toBe(true)
    }
    return n
  } finally {
    await loaded.journal.close()
  }
}

describe('destination errors', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  let receiver: Engine
  let ticket: string
  let src: string
  const mounts: string[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-disk-'))
    sender = await startSender({ chunking: { kind: 'fixed', size: MiB } })
    src = join(dir, 'src.bin')
    await writeFile(src, 16 * MiB + 99, 'random')
    ticket = await sender.publish(src)
    receiver = await createEngine({ workers: 1, retry: { maxAttempts: 5, baseDelayMs: 10 } })
  })
  afterAll(async () => {
    await receiver.stop()
    await sender.stop()
    for (const m of mounts) execFileSync('umount', ['-l', m])
    await cleanup()
  })

  async function tmpfs(name: string, size: string): Promise<string> {
    const m = join(dir, name)
    await mkdir(m)
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', m])
    mounts.push(m)
    return m
  }

  async function fails(dest: string) {
    let retries = 0
    const err = await receiver
      .fetch(ticket, dest, { onRetry: () => retries++ })
      .result.catch((e: unknown) => e)
    expect(retries).toBe(0) // none of these is worth retrying
    return err
  }

  it('the destination is a directory: DESTINATION_INVALID, nothing created', async () => {
    const d = join(dir, 'a-folder')
    await mkdir(d)
    const err = await fails(d)
    expect(err).toBeInstanceOf(DestinationInvalidError)
    expect((err as Error).message).toMatch(/is a directory/)
    expect(existsSync(`${d}.part`)).toBe(false)
    expect(existsSync(journalPath(d))).toBe(false)
  })

  it('<dest>.part is a directory, or the folder does not exist: DESTINATION_INVALID', async () => {
    const d = join(dir, 'blocked')
    await mkdir(`${d}.part`)
    expect(await fails(d)).toBeInstanceOf(DestinationInvalidError)
    const missing = await fails(join(dir, 'no', 'such', 'folder', 'x'))
    expect(missing).toBeInstanceOf(DestinationInvalidError)
    expect((missing as Error).message).toContain(
      `the folder ${join(dir, 'no', 'such', 'folder')} does not exist`,
    )
    // A folder that exists but takes no new files answers ENOENT too: said as it is.
    const proc = await fails('/proc/haul-nope')
    expect(proc).toBeInstanceOf(DestinationInvalidError)
    expect((proc as Error).message).toMatch(/cannot create \/proc\/haul-nope.*: \/proc takes no new files/)
  })

  it('the folder is a file: DESTINATION_INVALID naming the path', async () => {
    const f = join(dir, 'plain-file')
    await writeFile(f, 10, 'random')
    const err = await fails(join(f, 'x'))
    expect(err).toBeInstanceOf(DestinationInvalidError)
    expect((err as Error).message).toContain(f)
    expect((err as Error).message).toContain('is a file, not a folder')
  })

  describe.skipIf(!isRoot)(`on real filesystems${NEEDS_ROOT}`, () => {
    it('no space left mid-transfer: NO_SPACE at once, the journal agrees with the part file; with space back it resumes', async () => {
      const m = await tmpfs('small', '24m')
      const dest = join(m, 'out.bin')
      // Slow link, so the disk can be filled while chunks are still arriving.
      const proxy = await FaultProxy.start({
        target: { port: tcpPortOf(sender.network.addresses) },
        rateBytesPerSec: 8 * MiB,
      })
      let filled: Promise<void> | undefined
      let kept = 0
      const filler = join(m, 'filler')
      // An engine of its own: one already connected to the sender would bypass the proxy.
      const slow = await createEngine({ workers: 1 })
      try {
        let retries = 0
        const err = await slow
          .fetch(proxyTicket(ticket, proxy), dest, {
            onRetry: () => retries++,
            onProgress: (p) => {
              if (p.bytesDone >= 4 * MiB && filled === undefined) filled = fillDisk(filler)
            },
          })
          .result.catch((e: unknown) => e)
        await filled
        expect(err, String((err as Error)?.stack ?? JSON.stringify(err))).toBeInstanceOf(NoSpaceError)
        expect((err as NoSpaceError).code).toBe('NO_SPACE')
        expect(retries).toBe(0)
        expect(existsSync(dest)).toBe(false)
        kept = await journalAgreesWithPart(dest, src)
        expect(kept).toBeGreaterThanOrEqual(4)
      } finally {
        await slow.stop()
        await proxy.close()
      }
      // Still full: the next attempt fails the same way, before touching the part file; the journal
      // vouches for the same chunks (its clean stop may add the seal: the part file's mtime).
      const partBefore = await sha(`${dest}.part`)
      expect(await fails(dest)).toBeInstanceOf(NoSpaceError)
      expect(await sha(`${dest}.part`)).toBe(partBefore)
      expect(await journalAgreesWithPart(dest, src)).toBe(kept)
      await unlink(filler)
      const r = await receiver.fetch(ticket, dest).result
      expect(r.resume.mode).toBe('journal')
      expect(r.resume.chunksKept).toBeGreaterThanOrEqual(4)
      expect(await sha256File(dest)).toBe(await sha256File(src))
    })

    it('read-only filesystem: PERMISSION_DENIED (EROFS), part file and journal untouched; read-write again, it resumes', async () => {
      const m = await tmpfs('ro', '64m')
      const dest = join(m, 'out.bin')
      await interruptedFetch({ ticket, senderAddrs: sender.network.addresses, dest, atBytes: 6 * MiB })
      const before = [await sha(`${dest}.part`), await sha(journalPath(dest))]
      execFileSync('mount', ['-o', 'remount,ro', m])
      try {
        const err = await fails(dest)
        expect(err).toBeInstanceOf(PermissionDeniedError)
        expect((err as Error).message).toMatch(/EROFS/)
        const fresh = await fails(join(m, 'fresh.bin'))
        expect(fresh).toBeInstanceOf(PermissionDeniedError)
        expect([await sha(`${dest}.part`), await sha(journalPath(dest))]).toEqual(before)
      } finally {
        execFileSync('mount', ['-o', 'remount,rw', m])
      }
      const r = await receiver.fetch(ticket, dest).result
      expect(r.resume.mode).toBe('journal')
      expect(await sha256File(dest)).toBe(await sha256File(src))
    })

    it('a folder needs twice its bytes free as it arrives: refused at once where only 1.5x is, nothing left behind; completes where 2x is', async () => {
      const tree = join(dir, 'tree')
      await mkdir(tree)
      for (let i = 0; i < 6; i++) await writeFile(join(tree, `f${i}.bin`), 2 * MiB, 'random', i)
      const folderSender = await createEngine({ workers: 1 })
      try {
        const { ticket: folderTicket } = await folderSender.publishCollection(tree)
        const tight = await tmpfs('tight', '18m')
        const err = await receiver.fetchCollection(folderTicket, join(tight, 'tree')).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(NoSpaceError)
        expect((err as Error).message).toContain('while it arrives')
        expect(execFileSync('ls', ['-A', tight], { encoding: 'utf8' })).toBe('')
        const roomy = await tmpfs('roomy', '26m')
        const r = await receiver.fetchCollection(folderTicket, join(roomy, 'tree'))
        expect(r.files).toBe(6)
        for (let i = 0; i < 6; i++) {
          expect(await sha256File(join(roomy, 'tree', `f${i}.bin`))).toBe(
            await sha256File(join(tree, `f${i}.bin`)),
          )
        }
      } finally {
        await folderSender.stop()
      }
    })

    /**
     * A folder of `files` small files fetched into `got` on a tmpfs of `mountOpts` (mounted at
     * `<dir>/<name>`): the error it fails with, and the mount.
     */
    async function folderOnTmpfs(name: string, files: number, mountOpts: string) {
      const tree = join(dir, `${name}-src`)
      await mkdir(tree)
      for (let i = 0; i < files; i++) await writeFile(join(tree, `f${i}.bin`), 1000, 'random', i)
      const folderSender = await createEngine({ workers: 1 })
      try {
        const { ticket: folderTicket } = await folderSender.publishCollection(tree)
        const m = join(dir, name)
        await mkdir(m)
        execFileSync('mount', ['-t', 'tmpfs', '-o', mountOpts, 'tmpfs', m])
        mounts.push(m)
        const err = await receiver.fetchCollection(folderTicket, join(m, 'got')).then(
          () => undefined,
          (e: unknown) => e,
        )
        return { err, m }
      } finally {
        await folderSender.stop()
      }
    }

    it('a folder on a filesystem out of inodes (tmpfs nr_inodes=40): NO_SPACE from the worker that cuts its files, saying inodes and naming real paths', async () => {
      const { err, m } = await folderOnTmpfs('few-inodes', 80, 'size=8m,nr_inodes=40')
      expect(err).toBeInstanceOf(NoSpaceError)
      expect((err as Error).message).toMatch(
        new RegExp(
          `^no space \\(or no free inodes\\) left creating ${m}/got/\\.haul-incoming/tree/f\\d+\\.bin: `,
        ),
      )
      expect((err as Error).message).not.toContain('/proc/self/fd')
    })

    it('a folder whose staging folder cannot be made (tmpfs nr_inodes=2: its root and the folder only): NO_SPACE naming its real path', async () => {
      const { err, m } = await folderOnTmpfs('two-inodes', 2, 'size=1m,nr_inodes=2')
      expect(err).toBeInstanceOf(NoSpaceError)
      expect((err as Error).message).toMatch(
        new RegExp(`^no space \\(or no free inodes\\) left creating ${m}/got/\\.haul-incoming: `),
      )
    })

    it('permission denied (EACCES), for a receiver process running as nobody: PERMISSION_DENIED', async () => {
      const ro = join(dir, 'not-writable')
      await mkdir(ro)
      await chmod(ro, 0o555)
      await chmod(dir, 0o755) // let nobody reach it
      const child = spawnPeer({ mode: 'get', ticket, dest: join(ro, 'x.bin') }, { uid: 65534, gid: 65534 })
      const e = await child.waitFor((ev) => ev.event === 'error' || ev.event === 'done', 'a result')
      expect((await child.exited).code).toBe(1)
      expect(e).toMatchObject({ event: 'error', code: 'PERMISSION_DENIED' })
      expect(String(e.message)).toMatch(/EACCES/)
      expect(existsSync(join(ro, 'x.bin.part'))).toBe(false)
    })
  })
})

/** Writes 1 MiB blocks until the filesystem says ENOSPC. */
async function fillDisk(path: string): Promise<void> {
  const fh = await open(path, 'w')
  const block = Buffer.alloc(MiB, 1)
  try {
    for (;;) await fh.write(block)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    await fh.close()
  }
}
