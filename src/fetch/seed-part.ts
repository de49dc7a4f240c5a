/**
 * A file fetched with `overwrite` over other data at its destination (an older version of it,
 * say): the destination's bytes are copied into a new `<dest>.part` before anything is fetched.
 * The re-hash then checks every chunk of it against the content's leaves at the same offsets and
 * keeps those that match (src/fetch/resume.ts, reason `destination`), as a folder fetched again
 * over its earlier copy keeps its files' (src/collection/seed-pack.ts). So a file changed in
 * place at its sender costs the network only the chunks that changed. The destination itself is
 * untouched until the fetch completes and its part file takes its place.
 */
import { constants } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { isHaulError } from '../errors.ts'
import { COPY_BLOCK, copyInto } from '../storage/copy-into.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { freeBytes } from '../storage/free-space.ts'
import { fsError } from '../storage/fs-errors.ts'
import { openOwnFile, unlinkEntry } from '../storage/safe-open.ts'

/**
 * Copies the regular file named `name` in `folder` into a new `<name>.part` there (which must not
 * exist). Returns the bytes copied: 0, and no part file left, when there is no regular file with
 * bytes, the folder has less room than the file takes, or nothing could be read. A failed write
 * (a full disk, say) throws, its part file removed.
 */
export async function seedPartFromDestination(folder: DestFolder, name: string): Promise<number> {
  const at = folder.at(name)
  const s = await lstat(at).catch(() => undefined)
  if (s === undefined || !s.isFile() || s.size === 0) return 0
  // The copy needs room of its own until the fetch puts it in the file's place.
  const free = await freeBytes(folder.path)
  if (free !== undefined && free < s.size) return 0
  const partPath = folder.file(`${name}.part`)
  const partAt = folder.at(`${name}.part`)
  const out = await openOwnFile(partAt, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, partPath)
  let copied = 0
  try {
    copied = await copyInto(at, s.size, out, 0, new Uint8Array(COPY_BLOCK))
  } catch (err) {
    await out.close()
    await unlinkEntry(partAt).catch(() => {})
    throw isHaulError(err) ? err : fsError(err, partPath)
  }
  await out.close()
  if (copied === 0) await unlinkEntry(partAt).catch(() => {})
  return copied
}
