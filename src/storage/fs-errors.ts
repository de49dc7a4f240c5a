import { existsSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import {
  DestinationInvalidError,
  FileTooLargeError,
  type HaulError,
  InternalError,
  isHaulError,
  NoSpaceError,
  PermissionDeniedError,
  SourceInvalidError,
  tooManyOpenFiles,
} from '../errors.ts'

/** The system calls (Node's `syscall` of an error) that make a new file, folder or link. */
const CREATES: ReadonlySet<string> = new Set([
  'open',
  'mkdir',
  'mkdtemp',
  'symlink',
  'link',
  'mknod',
  'copyfile',
])

/**
 * What EFBIG means here and what to do: the process's file-size limit (`ulimit -f`, read from
 * /proc/self/limits on an error path, where a synchronous read is fine), or, with no such limit,
 * the filesystem's largest file.
 */
function tooLarge(): string {
  const limit = fileSizeLimit()
  if (limit === null) {
    return 'the file is larger than the filesystem holds (EFBIG; FAT32 holds at most 4 GiB a file): choose a destination on another filesystem'
  }
  const shown = limit === undefined ? '' : `: ${limit} bytes`
  return `the file is larger than this process's file-size limit (EFBIG; \`ulimit -f\`${shown}): raise it (\`ulimit -f unlimited\`) and run the same command again, or, if the limit is not the cause, choose a destination on a filesystem that holds larger files`
}

/** The process's file-size limit in bytes; null when it has none, undefined when unknown. */
function fileSizeLimit(): number | null | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max file size'))
    const soft = line?.slice('Max file size'.length).trim().split(/\s+/)[0]
    if (soft === 'unlimited') return null
    return soft === undefined || !/^\d+$/.test(soft) ? undefined : Number(soft)
  } catch {
    return undefined
  }
}

/** Maps a Node fs error to the haul error a user can act on; `what` names the file for the message. */
export function fsError(err: unknown, what: string): HaulError {
  if (isHaulError(err)) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      // A file or folder being made needs an inode as well as bytes: a filesystem of many small
      // files (a tmpfs, `nr_inodes`) runs out of those first, with bytes to spare.
      if (CREATES.has((err as NodeJS.ErrnoException).syscall ?? '')) {
        return new NoSpaceError(
          `no space (or no free inodes) left creating ${what}: free some space, or remove files if \`df -i\` shows no free inodes, and run the same command again`,
          { cause: err },
        )
      }
      return new NoSpaceError(
        `no space left writing ${what}: free some space and run the same command again`,
        {
          cause: err,
        },
      )
    case 'EFBIG':
      return new FileTooLargeError(`${what}: ${tooLarge()}`, { cause: err })
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PermissionDeniedError(`cannot write ${what} (${code}): choose a writable destination`, {
        cause: err,
      })
    case 'EISDIR':
      return new DestinationInvalidError(`${what} is a directory: give a file path`, { cause: err })
    case 'ENOENT':
      // An error path, so a synchronous look is fine: a folder that exists and still answers
      // ENOENT to a create is one that takes no new files (/proc, /sys).
      return new DestinationInvalidError(
        existsSync(dirname(what))
          ? `cannot create ${what} (${code}): ${dirname(what)} takes no new files (a virtual filesystem such as /proc?): choose another path`
          : `the folder ${dirname(what)} does not exist (${code}): create it, or choose another path`,
        { cause: err },
      )
    case 'ENOTDIR':
      return new DestinationInvalidError(
        `${dirname(what)}, or a folder above it, is a file, not a folder (${code}): choose another path`,
        { cause: err },
      )
    case 'ENAMETOOLONG':
      return new DestinationInvalidError(
        `${what}: a name in this path is longer than the filesystem allows (${code}): choose a shorter one`,
        { cause: err },
      )
    case 'EMFILE':
    case 'ENFILE':
      return tooManyOpenFiles(err, what)!
    case 'ELOOP':
      return new DestinationInvalidError(
        `${what}: the path goes through a loop of symbolic links (${code}): choose another path`,
        { cause: err },
      )
    default:
      return new InternalError(`${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  }
}

/**
 * Maps a Node fs error on a file being read for publishing or indexing (the source, not a
 * destination) to the haul error a user can act on.
 */
export function sourceError(err: unknown, path: string): HaulError {
  if (isHaulError(err)) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      // Node reads names as UTF-8 and puts U+FFFD for bytes that are not: the name it then
      // asks for is not the file's, which exists all the same.
      if (path.includes('\uFFFD')) {
        return new SourceInvalidError(
          `${JSON.stringify(path)}: a name in this path is not valid UTF-8, so haul cannot open or send it by name: rename it (convmv fixes many at once)`,
          { cause: err },
        )
      }
      return new SourceInvalidError(`${path} does not exist: check the path`, { cause: err })
    case 'EISDIR':
      return new SourceInvalidError(`${path} is a folder: give a file`, { cause: err })
    case 'ENAMETOOLONG':
      return new SourceInvalidError(
        `${path}: a name in this path is longer than the filesystem allows (${code}): check the path`,
        { cause: err },
      )
    case 'ELOOP':
      return new SourceInvalidError(
        `${path}: the path goes through a loop of symbolic links (${code}): give the file itself`,
        { cause: err },
      )
    case 'EACCES':
    case 'EPERM':
      return new PermissionDeniedError(`cannot read ${path} (${code}): check its permissions`, {
        cause: err,
      })
    default:
      return fsError(err, path)
  }
}
