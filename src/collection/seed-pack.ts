/**
 * A folder fetched again over an earlier copy of it (`--force`, `overwrite: true`): the files
 * already there of the size the manifest gives are copied into the pack's part file at their
 * offsets before the pack is fetched. The fetch then finds a part file without a journal and
 * re-hashes it against the pack's verified leaves (src/fetch/resume.ts): every chunk whose bytes
 * match is kept, the rest is fetched over what was copied. So a folder in which a few files
 * changed costs the network only the chunks those files touch. Nothing copied is trusted before
 * it is hashed; a file of another size is not read at all.
 *
 * Files are opened without following links, each a regular file checked again once open; a file
 * that cannot be read is skipped (it is fetched).
 */
import { constants } from 'node:fs'
import { lstat, open } from 'node:fs/promises'
import { isHaulError } from '../errors.ts'
import { COPY_BLOCK, copyInto } from '../storage/copy-into.ts'
import { fsError } from '../storage/fs-errors.ts'
import { O_NOFOLLOW, unlinkEntry } from '../storage/safe-open.ts'
import { throwIfAborted } from '../util/abort.ts'
import type { Manifest } from './manifest.ts'

/**
 * Creates `packPart` (which must not exist) and copies into it the files under `at` that match
 * the manifest's sizes, telling `onCopied` the bytes copied so far after each block. Returns the
 * bytes copied; with none, no part file is left.
 */
export async function seedPack(
  at: (path: string) => string,
  manifest: Manifest,
  packPart: string,
  signal: AbortSignal,
  onCopied: (bytes: number) => void = () => {},
): Promise<number> {
  const out = await open(
    packPart,
    constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW,
    0o600,
  ).catch((err: unknown) => {
    throw fsError(err, packPart)
  })
  let copied = 0
  try {
    await out.truncate(manifest.packSize)
    const block = new Uint8Array(COPY_BLOCK)
    const dirs = new Map<string, boolean>()
    for (const e of manifest.entries) {
      if (e.kind !== 'file' || e.size === 0) continue
      throwIfAborted(signal)
      if (!(await inRealFolders(at, e.path, dirs))) continue
      copied += await copyInto(at(e.path), e.size, out, e.offset, block, (n) => onCopied(copied + n))
    }
  } catch (err) {
    throw isHaulError(err) ? err : fsError(err, packPart)
  } finally {
    await out.close()
  }
  if (copied === 0) await unlinkEntry(packPart).catch(() => {})
  return copied
}

/**
 * Whether every folder on `path`'s way (relative to the destination) is a folder, not a link that
 * could lead out of it. `dirs` remembers the answers (one entry per folder of the manifest).
 */
async function inRealFolders(
  at: (path: string) => string,
  path: string,
  dirs: Map<string, boolean>,
): Promise<boolean> {
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const dir = path.slice(0, i)
    let real = dirs.get(dir)
    if (real === undefined) {
      real = (await lstat(at(dir)).catch(() => undefined))?.isDirectory() === true
      dirs.set(dir, real)
    }
    if (!real) return false
  }
  return true
}
