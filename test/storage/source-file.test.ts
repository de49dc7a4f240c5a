import { mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentChangedError } from '../../src/errors.ts'
import {
  type FileFingerprint,
  fingerprint,
  isRacy,
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
    await writeFile(path, new Uint8Array(10).fill(1))
    await expect(later.checkUnchanged()).rejects.toBeInstanceOf(ContentChangedError)
    await later.close()
  })
})
