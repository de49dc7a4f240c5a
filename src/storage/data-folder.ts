/**
 * Where haul keeps what it derives from the files it sends: descriptors (and a collection's
 * manifest), never beside the source files. With a data folder (`dataDir`, `haul --data-dir`)
 * they go in its `descriptors/`; without one in the per-user cache folder of the XDG base
 * directory convention, `$XDG_CACHE_HOME/haul/descriptors` (`~/.cache/haul/descriptors`).
 * Everything there can be rebuilt by indexing again, so it is a cache: bounded by
 * MAX_KEPT_DESCRIPTORS, oldest first out.
 */
import { createHash } from 'node:crypto'
import { readdir, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { makeFolders } from '../util/make-folders.ts'
import { fsError } from './fs-errors.ts'

/** Files kept in the descriptors folder; publishing beyond this removes the least recently written. */
export const MAX_KEPT_DESCRIPTORS = 4096

/** The descriptors folder for `dataDir` (see the module comment), created if missing. */
export async function descriptorFolder(dataDir: string | undefined): Promise<string> {
  const dir =
    dataDir !== undefined
      ? resolve(dataDir, 'descriptors')
      : join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'haul', 'descriptors')
  await makeFolders(dir, 0o700).catch((err) => {
    throw fsError(err, dir)
  })
  return dir
}

/** A file name from the parts that identify what it derives from (paths, fingerprints, chunking). */
export function derivedName(parts: readonly unknown[], ext: string): string {
  const h = createHash('sha256')
  for (const p of parts)
    h.update(
      typeof p === 'string' ? p : JSON.stringify(p, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    ).update('\0')
  return `${h.digest('hex').slice(0, 32)}${ext}`
}

/**
 * Keeps the folder within MAX_KEPT_DESCRIPTORS files (oldest modification time out). Cheap to
 * call after each publish: one readdir, and stats only once the folder is over its bound.
 */
export async function pruneFolder(dir: string, keep = MAX_KEPT_DESCRIPTORS): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  if (names.length <= keep) return
  const dated = await Promise.all(
    names.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
  )
  dated.sort((a, b) => a.t - b.t)
  for (const { n } of dated.slice(0, names.length - keep)) await rm(join(dir, n), { force: true })
}
