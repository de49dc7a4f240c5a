import { existsSync } from 'node:fs'
import { chmod, link, mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentChangedError, SourceInvalidError } from '../../src/errors.ts'
import {
  type FileFingerprint,
  fingerprint,
  isRacy,
  lastChangeNs,
  MAX_VOUCHED_CHUNKS,
  RACY_WINDOW_NS,
  SourceFile,
  sameFile,
} from '../../src/storage/source-file.ts'

describe('file fingerprints', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'haul-source-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('a file of /proc or /sys, whose size says nothing of its content, is refused SOURCE_INVALID saying to copy it first', async () => {
    const sysFile = '/sys/kernel/mm/transparent_hugepage/enabled'
    for (const path of ['/proc/self/status', '/proc/cpuinfo', ...(existsSync(sysFile) ? [sysFile] : [])]) {
      const err = await fingerprint(path).catch((e: unknown) => e)
      expect(err, path).toBeInstanceOf(SourceInvalidError)
      expect((err as Error).message).toContain('copy it to a regular file first')
    }
  })

  it('a file changed in place with its size and mtime put back is not the same file (its ctime moved)', async () => {
    const path = join(dir, 'in-place.bin')
    await writeFile(path, new Uint8Array(4096).fill(7))
    await utimes(path, 1_700_000_000, 1_700_000_000)
    const before = await fingerprint(path)
    // ctime has the kernel's timestamp granularity: let it tick before the change.
    await new Promise((r) => setTimeout(r, 20))
    const fh = await open(path, 'r+')
    await fh.write(new Uint8Array([1]), 0, 1, 100)
    await fh.close()
    await utimes(path, 1_700_000_000, 1_700_000_000)
    const after = await fingerprint(path)
    expect([after.size, after.mtimeNs]).toEqual([before.size, before.mtimeNs])
    expect(after.ctimeNs).not.toBe(before.ctimeNs)
    expect(sameFile(before, after)).toBe(false)
    expect(sameFile(before, await fingerprint(path))).toBe(false)
    expect(sameFile(after, await fingerprint(path))).toBe(true)
  })

  it('a file replaced by another (rename over it) is not the same file, even with equal size and times', async () => {
    const a = join(dir, 'a.bin')
    await writeFile(a, new Uint8Array(100))
    const fa = await fingerprint(a)
    const b = join(dir, 'b.bin')
    await writeFile(b, new Uint8Array(100))
    const fb = await fingerprint(b)
    expect(fb.ino).not.toBe(fa.ino)
    expect(sameFile(fa, { ...fb, mtimeNs: fa.mtimeNs, ctimeNs: fa.ctimeNs })).toBe(false)
  })

  it('is racy when the last change is within the window of taking it, or in the future', () => {
    const base: FileFingerprint = { dev: 1n, ino: 2n, size: 3, mtimeNs: 0n, ctimeNs: 0n, takenNs: 0n }
    const at = (changedNs: bigint, takenNs: bigint): FileFingerprint => ({
      ...base,
      mtimeNs: changedNs,
      ctimeNs: changedNs,
      takenNs,
    })
    const t = 1_800_000_000_000_000_000n
    expect(isRacy(at(t - RACY_WINDOW_NS, t))).toBe(false)
    expect(isRacy(at(t - RACY_WINDOW_NS + 1n, t))).toBe(true)
    expect(isRacy(at(t + 5_000_000_000n, t))).toBe(true)
    // The later of mtime and ctime counts (mtime can be set ahead with utimes).
    expect(isRacy({ ...at(t - 10n * RACY_WINDOW_NS, t), mtimeNs: t })).toBe(true)
  })

  it('a file just written needs its chunks hashed; one last changed over the window ago does not', async () => {
    const path = join(dir, 'fresh.bin')
    await writeFile(path, new Uint8Array(10))
    const fresh = await SourceFile.open(path, await fingerprint(path))
    expect(fresh.needsChunkHash).toBe(true)
    await fresh.close()
    const fp = await fingerprint(path)
    // The same stat, taken as if the window had passed (the clock, not the file, moved).
    const later = await SourceFile.open(path, { ...fp, takenNs: fp.ctimeNs + RACY_WINDOW_NS })
    expect(later.needsChunkHash).toBe(false)
    await later.checkUnchanged()
    await new Promise((r) => setTimeout(r, 20))
    // Rewritten at the same size: the fingerprint can no longer vouch, each chunk is hashed again.
    await writeFile(path, new Uint8Array(10).fill(1))
    await later.checkUnchanged()
    expect(later.needsChunkHash).toBe(true)
    // Another size cannot be the indexed bytes.
    await writeFile(path, new Uint8Array(11))
    await expect(later.checkUnchanged()).rejects.toBeInstanceOf(ContentChangedError)
    await later.close()
  })

  it('touched (chmod, a new hard link) but not written: still served, each chunk hashed again until each was', async () => {
    const path = join(dir, 'touched.bin')
    await writeFile(path, new Uint8Array(20))
    const fp = await fingerprint(path)
    const src = await SourceFile.open(path, { ...fp, takenNs: lastChangeNs(fp) + RACY_WINDOW_NS }, 2)
    expect(src.needsChunkHash).toBe(false)
    await new Promise((r) => setTimeout(r, 20))
    await chmod(path, 0o600)
    await src.checkUnchanged()
    expect(src.needsChunkHash).toBe(true)
    const since = lastChangeNs(src.expected) + RACY_WINDOW_NS
    src.chunkHashed(0, since)
    src.chunkHashed(1, since)
    expect(src.needsChunkHash).toBe(false)
    // A link removed under the open handle (the file deleted): refused, though its bytes are still there.
    await link(path, `${path}.2`)
    await src.checkUnchanged()
    await rm(path)
    await rm(`${path}.2`)
    await expect(src.checkUnchanged()).rejects.toMatchObject({ code: 'CONTENT_CHANGED' })
    await src.close()
  })

  it('a racy file is served unhashed once every chunk was hashed from a read after the window', async () => {
    const path = join(dir, 'promoted.bin')
    await writeFile(path, new Uint8Array(30))
    const fp = await fingerprint(path)
    const src = await SourceFile.open(path, fp, 3)
    const changed = lastChangeNs(fp)
    const within = changed + RACY_WINDOW_NS - 1n
    const after = changed + RACY_WINDOW_NS
    expect(src.needsChunkHash).toBe(true)
    // Reads that started within the window cannot vouch: a write in the same tick would not show.
    for (const i of [0, 1, 2]) src.chunkHashed(i, within)
    expect(src.needsChunkHash).toBe(true)
    src.chunkHashed(0, after)
    src.chunkHashed(0, after)
    src.chunkHashed(1, after + 5n)
    // Out of range: ignored, never counted.
    src.chunkHashed(3, after)
    src.chunkHashed(-1, after)
    expect(src.needsChunkHash).toBe(true)
    src.chunkHashed(2, after)
    expect(src.needsChunkHash).toBe(false)
    // From then on a change is caught by the fingerprint, as for any settled file: hashed again.
    await src.checkUnchanged()
    await new Promise((r) => setTimeout(r, 20))
    await writeFile(path, new Uint8Array(30).fill(1))
    await src.checkUnchanged()
    expect(src.needsChunkHash).toBe(true)
    await src.close()
  })

  it('a racy file with more chunks than are tracked stays hashed', async () => {
    const path = join(dir, 'huge-count.bin')
    await writeFile(path, new Uint8Array(10))
    const fp = await fingerprint(path)
    const src = await SourceFile.open(path, fp, MAX_VOUCHED_CHUNKS + 1)
    const later = lastChangeNs(fp) + RACY_WINDOW_NS
    for (let i = 0; i < 8; i++) src.chunkHashed(i, later)
    expect(src.needsChunkHash).toBe(true)
    await src.close()
  })
})
