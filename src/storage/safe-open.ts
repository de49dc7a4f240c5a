/**
 * The files a fetch keeps beside its destination (`<dest>.part`, `.part.journal` and its `.tmp`,
 * `.part.lock`, `.part.leaves`) live in a folder others may be able to write: a shared download
 * folder, /tmp. Whoever can write there can plant an entry under one of those names before haul
 * looks. So haul never opens them through a symbolic link (O_NOFOLLOW), never opens anything but a
 * regular file (checked with lstat before opening, so a device or a FIFO is not even opened, and
 * with fstat after, so a swap in between is caught before a byte is written), and refuses a file
 * with other names (hard links: writing it would change them) or one owned by another user (who
 * could change a verified file after haul checked it).
 */
import { type BigIntStats, constants, type Stats } from 'node:fs'
import { access, type FileHandle, lstat, open, unlink } from 'node:fs/promises'
import { DestinationInvalidError, PermissionDeniedError } from '../errors.ts'
import { fsError } from './fs-errors.ts'

/** 0 where the platform has no such flag (the checks after opening still hold). */
export const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0
const O_NONBLOCK = constants.O_NONBLOCK ?? 0

/** What a directory entry is, in words for a message. */
export function kindOf(s: Stats | BigIntStats): string {
  if (s.isFile()) return 'a regular file'
  if (s.isSymbolicLink()) return 'a symbolic link'
  if (s.isDirectory()) return 'a directory'
  if (s.isCharacterDevice()) return 'a character device'
  if (s.isBlockDevice()) return 'a block device'
  if (s.isFIFO()) return 'a named pipe (FIFO)'
  if (s.isSocket()) return 'a socket'
  return 'not a regular file'
}

/** lstat (never follows a link); undefined when nothing is there. */
export async function entryAt(path: string, shown = path): Promise<Stats | undefined> {
  try {
    return await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fsError(err, shown)
  }
}

/** {@link entryAt} with exact device and inode numbers (64-bit inodes exceed a double). */
export async function entryAtExact(path: string, shown = path): Promise<BigIntStats | undefined> {
  try {
    return await lstat(path, { bigint: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fsError(err, shown)
  }
}

/** Refuses anything at `shown` but a regular file with one name owned by this user. */
export function assertOwnFile(s: Stats | BigIntStats, shown: string): void {
  if (!s.isFile()) {
    throw new DestinationInvalidError(
      `${shown} is ${kindOf(s)}: haul writes only regular files there and never follows a link; remove it, then fetch again (or choose another destination)`,
    )
  }
  if (Number(s.nlink) > 1) {
    throw new DestinationInvalidError(
      `${shown} has ${s.nlink} names (hard links): writing it would change the others too; remove it, then fetch again (or choose another destination)`,
    )
  }
  const uid = process.geteuid?.()
  if (uid !== undefined && Number(s.uid) !== uid) {
    throw new PermissionDeniedError(
      `${shown} belongs to another user (uid ${s.uid}), who could change it after haul verified it; remove it, then fetch again (or choose another destination)`,
    )
  }
}

/**
 * Opens one of a fetch's own files at `path` (`shown` names it in messages): an existing entry
 * must pass {@link assertOwnFile} before it is opened and again once it is open; O_NOFOLLOW makes
 * a link planted in between fail the open, and O_NONBLOCK keeps a FIFO from blocking it.
 */
export async function openOwnFile(
  path: string,
  flags: number,
  shown = path,
  mode = 0o644,
): Promise<FileHandle> {
  const before = await entryAt(path, shown)
  if (before !== undefined) assertOwnFile(before, shown)
  let fh: FileHandle
  try {
    fh = await open(path, flags | O_NOFOLLOW | O_NONBLOCK, mode)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // ELOOP: a symbolic link appeared after the lstat. ENXIO: a FIFO without a reader.
    if (code === 'ELOOP' || code === 'ENXIO') {
      throw new DestinationInvalidError(
        `${shown} was replaced by something other than a regular file while haul opened it: remove it, then fetch again`,
        { cause: err },
      )
    }
    throw fsError(err, shown)
  }
  try {
    assertOwnFile(await fh.stat(), shown)
  } catch (err) {
    await fh.close().catch(() => {})
    throw err
  }
  return fh
}

/**
 * What `<dest>` itself may be when a fetch starts: nothing, a regular file, or a symbolic link
 * (replaced as an entry, see {@link assertReplaceable}). A directory, device, FIFO or socket is
 * never written nor replaced.
 */
export function assertNotSpecial(s: Stats, shown: string): void {
  if (s.isFile() || s.isSymbolicLink()) return
  if (s.isDirectory()) {
    throw new DestinationInvalidError(`${shown} is a directory: give a file path, e.g. ${shown}/<name>`)
  }
  throw new DestinationInvalidError(
    `${shown} is ${kindOf(s)}: haul replaces only regular files; choose another destination`,
  )
}

/**
 * What a finished fetch may rename its part file over: nothing; a symbolic link (the rename
 * replaces the link itself and never touches what it points to); or a regular file this user may
 * write. A read-only file (no write bit at all in its mode, or not writable by this user) stays:
 * the rename would replace it although the file's own mode forbids changing it, so PERMISSION_DENIED
 * asks for a chmod first. Anything else is {@link assertNotSpecial}'s.
 */
export async function assertReplaceable(path: string, shown = path): Promise<void> {
  const s = await entryAt(path, shown)
  if (s === undefined || s.isSymbolicLink()) return
  assertNotSpecial(s, shown)
  const writable =
    (s.mode & 0o222) !== 0 &&
    (await access(path, constants.W_OK).then(
      () => true,
      () => false,
    ))
  if (!writable) {
    throw new PermissionDeniedError(
      `${shown} is read-only (mode ${(s.mode & 0o7777).toString(8)}): haul keeps it; make it writable first (chmod u+w ${shown}) to replace it, or choose another destination`,
    )
  }
}

/** Removes one of haul's own files; nothing there is fine, anything else there is refused. */
export async function removeOwnFile(p: string): Promise<void> {
  const s = await entryAt(p)
  if (s === undefined) return
  assertOwnFile(s, p)
  await unlinkEntry(p)
}

/** unlink(), which removes an entry and never follows it; nothing there is fine. */
export async function unlinkEntry(p: string): Promise<void> {
  await unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw fsError(err, p)
  })
}
