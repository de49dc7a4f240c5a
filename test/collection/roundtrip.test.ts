import { execFileSync } from 'node:child_process'
import {
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { createEngine, type Engine } from '../../src/index.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { failure } from '../support/errors.ts'
import { tempDir } from '../support/files.ts'
import { bytes, treeOf } from '../support/tree.ts'

const MiB = 1024 * 1024

describe('collections between two real engines', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await createEngine({ workers: 2, dataDir: join(dir, 'sender-data') })
    receiver = await createEngine({ workers: 2 })
  })
  afterAll(async () => {
    await Promise.all([sender?.stop(), receiver?.stop()])
    await cleanup()
  })

  it('a folder with nested folders, empty files and folders, modes and chunk-crossing sizes arrives identical', async () => {
    const src = join(dir, 'photos')
    await mkdir(join(src, 'a/b/c'), { recursive: true })
    await mkdir(join(src, 'empty-dir'))
    await writeFile(join(src, 'a/one.bin'), bytes(MiB - 1, 1))
    await writeFile(join(src, 'a/b/two.bin'), bytes(MiB + 1, 2))
    await writeFile(join(src, 'a/b/c/three.bin'), bytes(3 * MiB + 17, 3))
    await writeFile(join(src, 'empty.txt'), '')
    await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n')
    await chmod(join(src, 'run.sh'), 0o755)
    await writeFile(join(src, 'secret.txt'), 'x')
    await chmod(join(src, 'secret.txt'), 0o600)
    for (let i = 0; i < 50; i++) await writeFile(join(src, 'a', `small-${i}.txt`), bytes(i * 100, i))
    await mkdir(join(src, 'read-only'))
    await writeFile(join(src, 'read-only', 'kept.txt'), 'k')
    await chmod(join(src, 'read-only'), 0o555)
    await symlink('a/one.bin', join(src, 'inside-link'))
    await symlink('/etc/passwd', join(src, 'outside-link'))

    const { ticket, index } = await sender.publishCollection(src)
    expect(index.name).toBe('photos')
    expect(index.files).toBe(57)
    expect(index.skipped.map((s) => s.path)).toEqual(['outside-link'])
    const files: string[] = []
    const out = join(dir, 'out', 'photos')
    const result = await receiver.fetchCollection(ticket, out, {
      symlinks: true,
      onFile: (f) => files.push(f.path),
    })
    expect(result.files).toBe(57)
    expect(result.links.created).toBe(1)
    const want = await treeOf(src)
    delete want['outside-link']
    expect(await treeOf(out)).toEqual(want)
    expect(files).toHaveLength(58)
  })

  it('several files at once, and a fetch that finds the folder already there resumes to nothing to do', async () => {
    const a = join(dir, 'several', 'a.txt')
    const b = join(dir, 'several', 'b.bin')
    await mkdir(join(dir, 'several'))
    await writeFile(a, 'hello')
    await writeFile(b, bytes(2 * MiB, 9))
    const { ticket, index } = await sender.publishCollection([a, b])
    expect(index.name).toBe('several')
    const out = join(dir, 'out2')
    await receiver.fetchCollection(ticket, out)
    expect(await treeOf(out)).toEqual(await treeOf(join(dir, 'several')))
    // Again into the same folder: it holds the collection already, so nothing is fetched.
    const again = await receiver.fetchCollection(ticket, out)
    expect(again).toMatchObject({ present: true, pack: undefined })
    // A file there holding other data is replaced only with overwrite.
    await writeFile(join(out, 'a.txt'), 'other')
    await expect(receiver.fetchCollection(ticket, out)).rejects.toMatchObject({ code: 'DESTINATION_EXISTS' })
    const replaced = await receiver.fetchCollection(ticket, out, { overwrite: true })
    expect(replaced.present).toBe(false)
    expect(await treeOf(out)).toEqual(await treeOf(join(dir, 'several')))
  })

  it.skipIf(process.getuid?.() !== 0)(
    'a folder of the destination that is another file system (a mount point): DESTINATION_INVALID before anything is fetched (mounts a tmpfs: needs root)',
    async () => {
      const src = join(dir, 'to-mount')
      await mkdir(join(src, 'vol'), { recursive: true })
      await writeFile(join(src, 'vol', 'in.bin'), bytes(MiB, 5))
      await writeFile(join(src, 'top.bin'), bytes(MiB, 6))
      const { ticket } = await sender.publishCollection(src)
      const out = join(dir, 'out-mount')
      await mkdir(join(out, 'vol'), { recursive: true })
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', join(out, 'vol')])
      try {
        await writeFile(join(out, 'vol', 'theirs.txt'), 'kept')
        const err = await failure(receiver.fetchCollection(ticket, out))
        expect(err.code).toBe('DESTINATION_INVALID')
        expect(err.message).toContain(
          `${join(out, 'vol')} is on another file system than ${out} (a mount point)`,
        )
        expect((await readdir(out)).sort()).toEqual(['vol'])
        expect(await readdir(join(out, 'vol'))).toEqual(['theirs.txt'])
      } finally {
        execFileSync('umount', ['-l', join(out, 'vol')])
      }
      // Once it is not a mount point, the same fetch places the folder.
      await receiver.fetchCollection(ticket, out, { overwrite: true })
      expect(await treeOf(join(out, 'vol'))).toMatchObject({ 'in.bin': expect.any(String) })
    },
  )

  it('a folder fetched again over its earlier copy (overwrite) after a few files changed: only the chunks those files touch are fetched', async () => {
    const src = join(dir, 'album')
    await mkdir(join(src, 'sub'), { recursive: true })
    for (let i = 0; i < 30; i++)
      await writeFile(join(src, i < 15 ? '' : 'sub', `p${i}.jpg`), bytes(MiB + 1000 * i, 100 + i))
    const out = join(dir, 'out-album')
    await receiver.fetchCollection((await sender.publishCollection(src)).ticket, out)
    // One file edited in place, one grown (the files after it move in the pack), one added.
    await writeFile(join(src, 'p3.jpg'), bytes(MiB + 3000, 7))
    await writeFile(join(src, 'sub', 'p20.jpg'), bytes(2 * MiB, 8))
    await writeFile(join(src, 'sub', 'new.jpg'), bytes(MiB / 2, 9))
    // A file edited at the receiver since is fetched again like the changed ones.
    await writeFile(join(out, 'p5.jpg'), bytes(MiB + 5000, 10))
    const { ticket, index } = await sender.publishCollection(src)
    expect((await failure(receiver.fetchCollection(ticket, out))).code).toBe('DESTINATION_EXISTS')
    const resumed: string[] = []
    const phases: string[] = []
    let read = 0
    const r = await receiver.fetchCollection(ticket, out, {
      overwrite: true,
      onResume: (info) => resumed.push(`${info.mode} ${info.reason}`),
      onProgress: (p) => {
        if (p.phase === 'reading') read = p.bytesRead ?? 0
        if (phases.at(-1) !== p.phase) phases.push(p.phase)
      },
    })
    expect(phases).toEqual(['manifest', 'reading', 'fetching', 'placing', 'done'])
    // Every file here of the size the new list gives was read: all but the one that grew.
    expect(read).toBe(30 * MiB + 1000 * ((29 * 30) / 2) - (MiB + 1000 * 20))
    expect(await treeOf(out)).toEqual(await treeOf(src))
    expect(resumed).toEqual(['rehash local-files'])
    expect(r.pack?.resume).toMatchObject({ mode: 'rehash', reason: 'local-files' })
    // Four files' bytes, and at most a chunk on either side of each of them, came over the network.
    const fetched = r.pack!.bytes - r.pack!.resume.bytesKept
    expect(fetched).toBeGreaterThanOrEqual(MiB + 3000 + 2 * MiB + MiB / 2 + MiB + 5000)
    expect(fetched).toBeLessThanOrEqual(MiB + 3000 + 2 * MiB + MiB / 2 + MiB + 5000 + 8 * MiB)
    expect(index.bytes - fetched).toBeGreaterThan(20 * MiB)
  })

  it('a file of a published folder touched (chmod, utimes) but not written: the folder is still served whole; one written is refused', async () => {
    const src = join(dir, 'touched')
    await mkdir(src)
    await writeFile(join(src, 'a.bin'), bytes(MiB + 3, 4))
    await writeFile(join(src, 'b.bin'), bytes(2 * MiB, 5))
    const { ticket } = await sender.publishCollection([src])
    // What was published: modes and times as they were then.
    const published = await treeOf(src)
    await chmod(join(src, 'a.bin'), 0o640)
    await utimes(join(src, 'b.bin'), 1_700_000_000, 1_700_000_000)
    const out = join(dir, 'touched-out')
    await receiver.fetchCollection(ticket, out)
    expect(await treeOf(out)).toEqual(published)
    // Its bytes changed at the same size: the chunk's hash tells, and the folder is withdrawn.
    await writeFile(join(src, 'b.bin'), bytes(2 * MiB, 6))
    const err = await receiver.fetchCollection(ticket, join(dir, 'touched-out-2')).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'CONTENT_CHANGED' })
  })

  it('a folder changed part-way through its fetch: its staging folder stays, and the folder published again fetches into the same place, clearing it', async () => {
    const src = join(dir, 'changes-midway')
    await mkdir(src)
    await writeFile(join(src, 'a.bin'), bytes(24 * MiB, 9))
    await writeFile(join(src, 'b.txt'), 'b')
    const { ticket } = await sender.publishCollection([src])
    const out = join(dir, 'changes-midway-out')
    let changed: Promise<void> | undefined
    const err = await receiver
      .fetchCollection(ticket, out, {
        maxBytesPerSec: 8 * MiB,
        onProgress: (p) => {
          if (p.bytesDone >= 4 * MiB) changed ??= writeFile(join(src, 'a.bin'), bytes(24 * MiB, 10))
        },
      })
      .catch((e: unknown) => e)
    await changed
    expect(err).toMatchObject({ code: 'CONTENT_CHANGED' })
    // Kept for another sender of the same folder; the folder published again is another.
    expect(await readdir(out)).toEqual(['.haul-incoming'])
    const again = await sender.publishCollection([src])
    await receiver.fetchCollection(again.ticket, out)
    expect(await treeOf(out)).toEqual(await treeOf(src))
    expect(await readdir(out)).not.toContain('.haul-incoming')
  })

  it('a fetch cut off, its folder changed and the sender restarted: the old ticket, tried as advised, says CONTENT_CHANGED and lets the new one clear what it left', async () => {
    const src = join(dir, 'changed-while-away')
    await mkdir(src)
    await writeFile(join(src, 'a.bin'), bytes(24 * MiB, 11))
    const dataDir = join(dir, 'restarting-sender')
    const before = await createEngine({ workers: 1, dataDir })
    const out = join(dir, 'changed-while-away-out')
    let old: string
    try {
      old = (await before.publishCollection([src])).ticket
      // Cut off part-way, as a kill would: the staging folder stays, with no note.
      const cut = new AbortController()
      const err = await receiver
        .fetchCollection(old, out, {
          maxBytesPerSec: 8 * MiB,
          signal: cut.signal,
          onProgress: (p) => {
            if (p.bytesDone >= 4 * MiB) cut.abort()
          },
        })
        .catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ABORTED' })
    } finally {
      await before.stop()
    }
    await writeFile(join(src, 'a.bin'), bytes(24 * MiB + 1, 12))
    const after = await createEngine({ workers: 1, dataDir })
    try {
      const { ticket } = await after.publishCollection([src])
      expect(await failure(receiver.fetchCollection(ticket, out))).toMatchObject({
        code: 'DESTINATION_EXISTS',
      })
      expect(await failure(receiver.fetchCollection(old, out))).toMatchObject({ code: 'CONTENT_CHANGED' })
      await receiver.fetchCollection(ticket, out)
      expect(await treeOf(out)).toEqual(await treeOf(src))
    } finally {
      await after.stop()
    }
  })

  it('a file of a published folder removed: CONTENT_CHANGED (the folder changed), not SOURCE_INVALID', async () => {
    const src = join(dir, 'loses-one')
    await mkdir(src)
    await writeFile(join(src, 'a.bin'), bytes(MiB, 7))
    await writeFile(join(src, 'b.bin'), bytes(MiB, 8))
    // One file open at a time: b.bin is opened again after a.bin, and is not there.
    const small = await createEngine({ workers: 1, server: { maxOpenFiles: 1 } })
    try {
      const { ticket } = await small.publishCollection([src])
      await rm(join(src, 'b.bin'))
      const err = await receiver.fetchCollection(ticket, join(dir, 'loses-one-out')).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'CONTENT_CHANGED' })
    } finally {
      await small.stop()
    }
  })

  it('a folder of /proc or /sys, or a /proc file among the paths: SOURCE_INVALID saying to copy it first, not a CONTENT_CHANGED that publishing again never cures', async () => {
    const plain = join(dir, 'plain.txt')
    await writeFile(plain, 'plain')
    for (const [publish, said] of [
      [() => sender.publishCollection('/proc/sys/kernel'), 'copy what you need to a regular folder first'],
      [() => sender.publishCollection(['/proc/cpuinfo', plain]), 'copy it to a regular file first'],
    ] as const) {
      const err = await failure(publish())
      expect(err.code).toBe('SOURCE_INVALID')
      expect(err.message).toContain(said)
    }
  })

  it('a name that is not valid UTF-8: SOURCE_INVALID saying so (not that the file is missing), for a folder and for the file alone', async () => {
    const src = join(dir, 'latin1')
    await mkdir(src)
    const raw = Buffer.concat([Buffer.from(`${src}/caf`), Buffer.from([0xe9]), Buffer.from('.txt')])
    await writeFile(raw, 'x')
    for (const publish of [
      () => sender.publishCollection(src),
      () => sender.publish(join(src, 'caf\uFFFD.txt')),
    ]) {
      const err = await failure(publish())
      expect(err.code).toBe('SOURCE_INVALID')
      expect(err.message).toContain('not valid UTF-8')
    }
  })

  it('setuid, setgid and sticky bits from the sender are dropped: a peer cannot plant a setuid program on a root receiver', async () => {
    const src = join(dir, 'suid')
    await mkdir(join(src, 'shared'), { recursive: true })
    await writeFile(join(src, 'tool'), '#!/bin/sh\n')
    await chmod(join(src, 'tool'), 0o4755)
    await writeFile(join(src, 'shared', 'group-tool'), 'x')
    await chmod(join(src, 'shared', 'group-tool'), 0o2750)
    await chmod(join(src, 'shared'), 0o3775)
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'suid-out')
    await receiver.fetchCollection(ticket, out)
    const modeOf = async (p: string) => (await lstat(join(out, p))).mode & 0o7777
    expect(await modeOf('tool')).toBe(0o755)
    expect(await modeOf('shared/group-tool')).toBe(0o750)
    expect(await modeOf('shared')).toBe(0o775)
  })

  it('a sparse file arrives sparse in a folder, as it does alone: its runs of zeros are holes', async () => {
    const src = join(dir, 'sparse-folder')
    await mkdir(src)
    const sparse = join(src, 'disk.img')
    // 24 MiB: data at the start, in the middle (not on a 64 KiB boundary) and at the end; zeros between.
    await writeFile(sparse, bytes(1000, 9))
    await truncate(sparse, 24 * MiB)
    const fd = await open(sparse, 'r+')
    await fd.write(bytes(70_000, 10), 0, 70_000, 11 * MiB + 123)
    await fd.write(bytes(5, 11), 0, 5, 24 * MiB - 5)
    await fd.close()
    await writeFile(join(src, 'dense.bin'), bytes(3 * MiB, 12))
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'sparse-out')
    await receiver.fetchCollection(ticket, out)
    execFileSync('cmp', [sparse, join(out, 'disk.img')])
    execFileSync('cmp', [join(src, 'dense.bin'), join(out, 'dense.bin')])
    const got = await stat(join(out, 'disk.img'), { bigint: false })
    expect(got.size).toBe(24 * MiB)
    // Three 64 KiB blocks hold data (the middle run spans two); the rest is holes.
    expect(got.blocks * 512).toBeLessThanOrEqual(4 * 64 * 1024)
    expect((await stat(join(out, 'dense.bin'))).blocks * 512).toBeGreaterThanOrEqual(3 * MiB)
  })

  it('a folder of only empty files moves without a pack', async () => {
    const src = join(dir, 'empties')
    await mkdir(src)
    for (let i = 0; i < 300; i++) await writeFile(join(src, `e${i}`), '')
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'out3')
    const r = await receiver.fetchCollection(ticket, out)
    expect(r.files).toBe(300)
    expect(r.pack).toBeUndefined()
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })

  it("another collection's unfinished fetch in the folder is not resumed from: refused unless overwrite discards it", async () => {
    const src = join(dir, 'mine')
    await mkdir(src)
    await writeFile(join(src, 'x.txt'), 'x')
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'out4')
    await mkdir(join(out, '.haul-incoming'), { recursive: true })
    await writeFile(join(out, '.haul-incoming', 'manifest-id'), 'ab'.repeat(32))
    await expect(receiver.fetchCollection(ticket, out)).rejects.toMatchObject({ code: 'DESTINATION_EXISTS' })
    await receiver.fetchCollection(ticket, out, { overwrite: true })
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })

  it("unpublishing a collection's id stops serving its manifest and its pack", async () => {
    const own = await createEngine({ workers: 1 })
    try {
      const src = join(dir, 'gone')
      await mkdir(src)
      await writeFile(join(src, 'g.txt'), 'g')
      const { ticket, index } = await own.publishCollection(src)
      expect(own.stats().serving.contents).toBe(2)
      own.unpublish(index.cid)
      expect(own.stats().serving.contents).toBe(0)
      await expect(receiver.fetchCollection(ticket, join(dir, 'out5'))).rejects.toMatchObject({
        code: 'CONTENT_NOT_FOUND',
      })
    } finally {
      await own.stop()
    }
  })

  /** A folder of two subfolders of 20 files, published, and a fetch of it cancelled as its first file is placed. */
  async function cancelledWhilePlacing(name: string, outName: string) {
    const src = join(dir, name)
    await mkdir(join(src, 'a'), { recursive: true })
    await mkdir(join(src, 'b'))
    for (let i = 0; i < 40; i++)
      await writeFile(join(src, i % 2 === 0 ? 'a' : 'b', `f${i}`), bytes(30_000 + i, i))
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, outName)
    const stop = new AbortController()
    let placed = 0
    const first = receiver.fetchCollection(ticket, out, {
      signal: stop.signal,
      onFile: () => {
        if (++placed === 1) stop.abort()
      },
    })
    await expect(first).rejects.toMatchObject({ code: 'ABORTED' })
    return { src, ticket, out }
  }

  it('cancelled while files are being placed, the same fetch again finishes the folder', async () => {
    const { src, ticket, out } = await cancelledWhilePlacing('placing', 'out6')
    const again = await receiver.fetchCollection(ticket, out)
    expect(again.resumed).toBe(true)
    expect(again.pack).toBeUndefined()
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })

  it('cancelled once the last move is done (the rest arrived with a folder moved whole): the fetch completes, nothing left staged', async () => {
    const src = join(dir, 'one-folder')
    await mkdir(join(src, 'only'), { recursive: true })
    for (let i = 0; i < 10; i++) await writeFile(join(src, 'only', `f${i}`), bytes(10_000 + i, i))
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'out-one-folder')
    const stop = new AbortController()
    const r = await receiver.fetchCollection(ticket, out, { signal: stop.signal, onFile: () => stop.abort() })
    expect(r.files).toBe(10)
    expect(await treeOf(out)).toEqual(await treeOf(src))
    expect(await readdir(out)).toEqual(['only'])
  })

  it('-o a symbolic link to a folder: DESTINATION_INVALID naming the folder to give instead, nothing written through it', async () => {
    const src = join(dir, 'link-dest-src')
    await mkdir(src)
    await writeFile(join(src, 'x'), bytes(1000, 9))
    const { ticket } = await sender.publishCollection(src)
    const real = join(dir, 'real-folder')
    await mkdir(real)
    await symlink(real, join(dir, 'link-to-folder'))
    const err = await failure(receiver.fetchCollection(ticket, join(dir, 'link-to-folder')))
    expect(err.code).toBe('DESTINATION_INVALID')
    expect(err.message).toContain(`is a symbolic link to ${real}`)
    expect(err.message).toContain(`-o ${real}`)
    expect(await readdir(real)).toEqual([])
  })

  it('a .haul-incoming link planted in the destination folder: DESTINATION_INVALID, nothing written through it', async () => {
    const src = join(dir, 'planted-src')
    await mkdir(src)
    await writeFile(join(src, 'x'), bytes(100_000, 10))
    const { ticket } = await sender.publishCollection(src)
    const out = join(dir, 'planted-out')
    const elsewhere = join(dir, 'planted-elsewhere')
    await mkdir(out)
    await mkdir(elsewhere)
    await symlink(elsewhere, join(out, '.haul-incoming'))
    const err = await failure(receiver.fetchCollection(ticket, out))
    expect(err.code).toBe('DESTINATION_INVALID')
    expect(err.message).toContain(`${out}/.haul-incoming is a symbolic link`)
    expect(await readdir(elsewhere)).toEqual([])
  })

  it('a second fetch into a folder another fetch is writing: DESTINATION_BUSY before it asks for the list of files, or with waitIfBusy it waits and finds the folder there', async () => {
    const src = join(dir, 'busy-src')
    await mkdir(src)
    for (let i = 0; i < 6; i++) await writeFile(join(src, `f${i}`), bytes(MiB, 50 + i))
    const { ticket } = await sender.publishCollection(src)
    // The sender's word for how often the list of files (the ticket's content) was asked for.
    const manifest = cidToString(decodeSwarmTicket(ticket).cid)
    let manifestAsked = 0
    const off = sender.onServe((e) => {
      if (e.type === 'content-requested' && e.cid === manifest) manifestAsked++
    })
    const out = join(dir, 'busy-out')
    let started: () => void = () => {}
    const fetching = new Promise<void>((r) => {
      started = r
    })
    const first = receiver.fetchCollection(ticket, out, {
      maxBytesPerSec: 3 * MiB,
      onProgress: (p) => {
        if (p.phase === 'fetching' && p.bytesDone > 0) started()
      },
    })
    await fetching
    expect(manifestAsked).toBe(1)
    expect((await failure(receiver.fetchCollection(ticket, out))).code).toBe('DESTINATION_BUSY')
    expect(manifestAsked).toBe(1)
    const holders: string[] = []
    let askedAsWaiting: number | undefined
    const second = await receiver.fetchCollection(ticket, out, {
      waitIfBusy: true,
      onWait: (holder) => {
        holders.push(holder)
        askedAsWaiting = manifestAsked
      },
    })
    off()
    expect((await first).present).toBe(false)
    expect(second.present).toBe(true)
    // It waited before asking for the list of files, and asked once the first was done.
    expect(askedAsWaiting).toBe(1)
    expect(manifestAsked).toBe(2)
    // Told once, as the waiting began, who writes the folder.
    expect(holders).toEqual([expect.stringMatching(/^(process \d+|another fetch)/)])
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })

  it('files an interrupted fetch had placed, deleted or edited since: refused (DESTINATION_EXISTS), fetched again with overwrite', async () => {
    const { src, ticket, out } = await cancelledWhilePlacing('placed-then-edited', 'out7')
    // The first folder moved whole: its files are in the destination now.
    const moved = Object.keys(await treeOf(out)).filter((p) => /^[ab]\/f\d+$/.test(p))
    expect(moved.length).toBeGreaterThan(1)
    await rm(join(out, moved[0]!))
    await new Promise((r) => setTimeout(r, 20))
    await writeFile(join(out, moved[1]!), 'a user edit')
    const refused = await failure(receiver.fetchCollection(ticket, out))
    expect(refused.code).toBe('DESTINATION_EXISTS')
    expect(refused.message).toMatch(
      /2 of the files the interrupted fetch had placed .* are missing or changed since/,
    )
    const again = await receiver.fetchCollection(ticket, out, { overwrite: true })
    expect(again.pack).toBeDefined()
    expect(await treeOf(out)).toEqual(await treeOf(src))
  })
})
