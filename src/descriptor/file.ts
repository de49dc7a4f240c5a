/**
 * On-disk layout of a descriptor file (`<content>.haul`), shared by writer and reader:
 *
 * | bytes                  | content                                             |
 * |------------------------|-----------------------------------------------------|
 * | [0, 4)                 | header length L, u32 BE (62 or 70)                  |
 * | [4, 4 + L)             | encoded header (see header.ts)                      |
 * | [4 + L, 128)           | zero padding                                        |
 * | [128, 128 + n * 44)    | leaf table: n rows of 44 bytes (see page.ts)        |
 *
 * The header slot has a fixed size so the table can be streamed to disk before
 * the root is known; the header is written last, then the file is fsynced and
 * renamed into place. The page-root level is not stored: opening recomputes it
 * from the table, which is also the integrity check.
 */
import { NoSpaceError, PermissionDeniedError, tooManyOpenFiles } from '../errors.ts'

export const HEADER_SLOT_SIZE = 128
export const HEADER_LENGTH_SIZE = 4

/** Descriptor file path for a content file, by convention. */
export function descriptorPathFor(file: string): string {
  return `${file}.haul`
}

/** Maps the file-system conditions users can act on to typed errors; others pass through. */
export function fsError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new NoSpaceError(`no space left writing ${path}; free some disk space`, { cause: err })
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new PermissionDeniedError(`permission denied on ${path}; check its owner and mode`, { cause: err })
  }
  return tooManyOpenFiles(err, path) ?? err
}
