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
import { type FileHandle, lstat, open } from 'node:fs/promises'
import { isHaulError } from '../errors.ts'
import { fsError } from '../storage/fs-errors.ts'
import { O_NOFOLLOW, unlinkEntry } from '../storage/safe-open.ts'
import { throwIfAborted } from '../util/abort.ts'
import type { Manifest } from './manifest.ts'

/** Bytes copied per read and write. */
const COPY_BLOCK = 1024 * 1024

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

/** Copies the regular file at `path`, if it has `size` bytes, to `offset` of `out`; the bytes copied. */
async function copyInto(
  path: string,
  size: number,
  out: FileHandle,
  offset: number,
  block: Uint8Array,
  onCopied: (bytes: number) => void,
): Promise<number> {
  const s = await lstat(path).catch(() => undefined)
  if (s === undefined || !s.isFile() || s.size !== size) return 0
  const fh = await open(path, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined)
  if (fh === undefined) return 0
  let done = 0
  try {
    const opened = await fh.stat()
    if (!opened.isFile() || opened.size !== size) return 0
    while (done < size) {
      // A file that cannot be read (or is shorter than it said) stops here: the rest is fetched.
      const bytesRead = await fh
        .read(block, 0, Math.min(block.length, size - done), done)
        .then((r) => r.bytesRead)
        .catch(() => 0)
      if (bytesRead === 0) break
      await out.write(block, 0, bytesRead, offset + done)
      done += bytesRead
      onCopied(done)
    }
    return done
  } finally {
    await fh.close()
  }
}
