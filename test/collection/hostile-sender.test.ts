import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, readlink, symlink, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_MANIFEST_BYTES } from '../../src/collection/manifest.ts'
import { MAX_DEPTH } from '../../src/collection/names.ts'
import { useEnginePair } from '../support/engine-pair.ts'
import { failure } from '../support/errors.ts'
import {
  craftManifest,
  dir,
  type Entry,
  file,
  link,
  publishAsCollection,
  serveAsCollection,
} from '../support/manifests.ts'
import { treeOf } from '../support/tree.ts'

const MiB = 1024 * 1024

const pair = useEnginePair({ sender: (d) => ({ workers: 1, dataDir: join(d, 'sender-data') }) })
let served = 0
const serve = (bytes: Uint8Array) => serveAsCollection(pair.sender, pair.dir, `served-${++served}`, bytes)

describe('a hostile sender: the receiver refuses its manifest before writing anything', () => {
  const savedTmp = process.env.TMPDIR
  /** The receiver's temporary folder: each manifest is fetched into a folder made in it. */
  let tmp: string

  beforeAll(async () => {
    // os.tmpdir() reads TMPDIR on each call, so this file's manifest folders land here, apart
    // from those of tests running in other workers.
    tmp = join(pair.dir, 'tmp')
    await mkdir(tmp)
    process.env.TMPDIR = tmp
  })
  afterAll(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = savedTmp
  })

  /** The fetch of `ticket` fails with MANIFEST_INVALID naming `shown`, and leaves no trace. */
  async function refusedTicket(ticket: string, shown: string, dest: string): Promise<void> {
    const err = await failure(pair.receiver.fetchCollection(ticket, dest, { symlinks: true }))
    expect(err.code).toBe('MANIFEST_INVALID')
    expect(err.message).toContain(shown)
    expect(existsSync(dest)).toBe(false)
    expect(await readdir(tmp)).toEqual([])
  }

  async function refused(entries: readonly Entry[], shown: string, dest: string): Promise<void> {
    await refusedTicket((await serve(craftManifest(entries))).ticket, shown, dest)
  }

  it('an absolute path', async () => {
    const sentinel = join(pair.dir, 'absolute-sentinel')
    await refused([file(sentinel)], JSON.stringify(sentinel), join(pair.dir, 'out-absolute'))
    expect(existsSync(sentinel)).toBe(false)
  })

  it('a path climbing out with ".."', async () => {
    // From <dir>/out-dotdot, "../dotdot-sentinel" is <dir>/dotdot-sentinel.
    await refused([file('../dotdot-sentinel')], '"../dotdot-sentinel"', join(pair.dir, 'out-dotdot'))
    expect(existsSync(join(pair.dir, 'dotdot-sentinel'))).toBe(false)
  })

  it('a ".." further in that climbs out', async () => {
    const entries = [dir('a'), file('a/../../inner-sentinel')]
    await refused(entries, '"a/../../inner-sentinel"', join(pair.dir, 'out-inner'))
    expect(existsSync(join(pair.dir, 'inner-sentinel'))).toBe(false)
  })

  it('a link pointing out of the tree', async () => {
    await refused([link('escape', '../../etc/passwd')], 'the link "escape"', join(pair.dir, 'out-link'))
  })

  it('a link pointing out through another link', async () => {
    // d/up is the top; d/up/.. is the top's parent.
    const entries = [dir('d'), link('d/up', '..'), link('l', 'd/up/..')]
    await refused(entries, 'the link "l"', join(pair.dir, 'out-link-link'))
  })

  it('a file written through a link', async () => {
    await refused([link('a', '..'), file('a/x')], 'the link "a"', join(pair.dir, 'out-through'))
    await refused(
      [link('a', '.'), file('a/x')],
      '"a/x" is not inside a folder',
      join(pair.dir, 'out-through'),
    )
  })

  it('a path listed twice', async () => {
    const entries = [file('a.txt'), file('a.txt')]
    await refused(entries, '"a.txt" is out of order or listed twice', join(pair.dir, 'out-dup'))
  })

  it('the staging folder as an entry', async () => {
    const entries = [dir('.haul-incoming'), file('.haul-incoming/pack')]
    await refused(entries, '".haul-incoming"', join(pair.dir, 'out-stage'))
  })

  it('a manifest over MAX_MANIFEST_BYTES is refused from its header, before its bytes are fetched', async () => {
    // Sparse: 257 MiB that take no disk.
    const big = join(pair.dir, 'big-manifest')
    await writeFile(big, '')
    await truncate(big, MAX_MANIFEST_BYTES + MiB)
    const { ticket } = await publishAsCollection(pair.sender, big)
    // The header's size, not a length counted after a download.
    const shown = `it is ${MAX_MANIFEST_BYTES + MiB} bytes, over ${MAX_MANIFEST_BYTES}`
    await refusedTicket(ticket, shown, join(pair.dir, 'out-big'))
  })

  it.each([
    ['smaller', 10],
    ['larger', 8 * MiB + 1],
  ])(
    'files adding up to a size %s than the pack it names: refused from the pack header, no chunk of it fetched',
    async (_, size) => {
      const pack = await serve(new Uint8Array(4 * MiB).fill(5))
      const { ticket } = await serve(craftManifest([file('tiny', size)], pack.cid))
      let chunks = 0
      const off = pair.sender.onServe((e) => {
        if (e.type === 'chunks-served') chunks += e.chunks
      })
      try {
        const shown = `its files add up to ${size} bytes, but the pack it names holds ${4 * MiB}`
        await refusedTicket(ticket, shown, join(pair.dir, `out-pack-${size}`))
      } finally {
        off()
      }
      // Only the manifest's one chunk was served.
      expect(chunks).toBe(1)
    },
  )

  it('names differing only in case arrive as two files where the file system keeps case apart', async () => {
    await writeFile(join(pair.dir, 'Case-Probe'), '')
    const folds = existsSync(join(pair.dir, 'case-probe'))
    const pack = await serve(Buffer.from('UPPERlower'))
    const { ticket } = await serve(craftManifest([file('A.txt', 5), file('a.txt', 5)], pack.cid))
    const dest = join(pair.dir, 'out-case')
    if (folds) {
      // A file system that ignores case (macOS, Windows) would make them one file: refused.
      await refusedTicket(ticket, '"A.txt" and "a.txt" are one file', dest)
      return
    }
    const r = await pair.receiver.fetchCollection(ticket, dest)
    expect(r.files).toBe(2)
    expect(await readdir(dest)).toEqual(expect.arrayContaining(['A.txt', 'a.txt']))
    expect(await readdir(dest)).toHaveLength(2)
    expect(await readFile(join(dest, 'A.txt'), 'utf8')).toBe('UPPER')
    expect(await readFile(join(dest, 'a.txt'), 'utf8')).toBe('lower')
  })
})

describe('links that stay inside the tree', () => {
  it('are skipped without `symlinks`, and created with the same targets with it', async () => {
    const pack = await serve(Buffer.from('hello'))
    // `top` ends at a link (d/l), whose own target is checked: allowed.
    const entries = [dir('d'), file('d/f', 5), link('d/l', 'f'), link('d/up', '..'), link('top', 'd/l')]
    const { ticket } = await serve(craftManifest(entries, pack.cid))

    const plain = join(pair.dir, 'out-links-skipped')
    const skipped = await pair.receiver.fetchCollection(ticket, plain)
    expect(skipped.links).toEqual({ created: 0, skipped: 3 })
    expect(Object.keys(await treeOf(plain))).toEqual(['d', 'd/f'])

    const linked = join(pair.dir, 'out-links-created')
    const created = await pair.receiver.fetchCollection(ticket, linked, { symlinks: true })
    expect(created.links).toEqual({ created: 3, skipped: 0 })
    expect(await readlink(join(linked, 'd/l'))).toBe('f')
    expect(await readlink(join(linked, 'd/up'))).toBe('..')
    expect(await readlink(join(linked, 'top'))).toBe('d/l')
    expect(await readFile(join(linked, 'top'), 'utf8')).toBe('hello')
  })
})

describe('the sender refuses or skips what no receiver accepts', () => {
  it.each([
    ['a newline', 'new\nline.txt'],
    ['a backslash', 'back\\slash.txt'],
    ['an escape', '\x1b[2Jclear.txt'],
  ])('a file named with %s is refused with SOURCE_INVALID', async (_, name) => {
    const src = join(pair.dir, `src-${name.charCodeAt(4)}`)
    await mkdir(join(src, 'sub'), { recursive: true })
    await writeFile(join(src, 'fine.txt'), 'fine')
    await writeFile(join(src, 'sub', name), 'bad')
    const err = await failure(pair.sender.publishCollection(src))
    expect(err.code).toBe('SOURCE_INVALID')
    expect(err.message).toContain(JSON.stringify(join(src, 'sub', name)))
  })

  it('a tree deeper than a collection keeps: SOURCE_INVALID with the path shortened and what to do', async () => {
    const src = join(pair.dir, 'src-deep')
    const deepest = join(src, ...Array.from({ length: MAX_DEPTH + 2 }, () => 'd'))
    await mkdir(deepest, { recursive: true })
    await writeFile(join(deepest, 'f'), 'deep')
    const err = await failure(pair.sender.publishCollection(src))
    expect(err.code).toBe('SOURCE_INVALID')
    expect(err.message).toMatch(
      /…(\/d)+ is more than \d+ folders deep, .*send the folders below it on their own/,
    )
    expect(err.message.length).toBeLessThan(300)
  })

  it('links leaving the folder, special files and the staging name are skipped and listed; the rest arrives', async () => {
    const src = join(pair.dir, 'src-mixed')
    await mkdir(join(src, 'd'), { recursive: true })
    await writeFile(join(src, 'keep.txt'), 'kept')
    await symlink('/etc/passwd', join(src, 'passwd'))
    await symlink('../../outside', join(src, 'd', 'climb'))
    await symlink('..', join(src, 'd', 'up'))
    await symlink('d/up/..', join(src, 'via'))
    // Inside by name, past the top through d/up again and again.
    await symlink(`${'d/up/'.repeat(4)}${'../'.repeat(6)}etc/passwd`, join(src, 'via-far'))
    await symlink('keep.txt', join(src, 'inside'))
    execFileSync('mkfifo', [join(src, 'fifo')])
    await mkdir(join(src, '.HAUL-INCOMING'))
    await writeFile(join(src, '.HAUL-INCOMING', 'x'), 'x')

    const { ticket, index } = await pair.sender.publishCollection(src)
    const why = Object.fromEntries(index.skipped.map((s) => [s.path, s.why]))
    expect(Object.keys(why).sort()).toEqual(['.HAUL-INCOMING', 'd/climb', 'fifo', 'passwd', 'via', 'via-far'])
    expect(why.passwd).toContain('/etc/passwd')
    expect(why['d/climb']).toContain('points outside the folder')
    expect(why.fifo).toContain('not a regular file')
    expect(why.via).toContain('through the link "d/up"')
    expect(why['via-far']).toContain('through the link "d/up"')
    expect(index.links).toBe(2)

    const out = join(pair.dir, 'out-mixed')
    await pair.receiver.fetchCollection(ticket, out, { symlinks: true })
    expect(await treeOf(out)).toEqual({
      d: 'dir 755',
      'd/up': 'link -> ..',
      inside: 'link -> keep.txt',
      'keep.txt': expect.stringMatching(/^file [0-7]+ 4 /),
    })
  })
})
