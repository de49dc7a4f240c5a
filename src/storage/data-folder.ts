/**
 * Where haul keeps what it derives from the files it sends: descriptors (and a collection's
 * manifest), never beside the source files. With a data folder (`dataDir`, `haul --data-dir`)
 * they go in its `descriptors/`; without one in the per-user cache folder of the XDG base
 * directory convention, `$XDG_CACHE_HOME/haul/descriptors` (`~/.cache/haul/descriptors`).
 * Everything there can be rebuilt by indexing again, so it is a cache: bounded by
 * MAX_KEPT_DESCRIPTORS, oldest first out, except the descriptors of content this process serves.
 * A process's own files there (a collection's manifest descriptor, a racily clean file's, a file
 * being written) carry its pid; those of a process killed before removing them go the first
 * time another process opens the folder.
 */
import { createHash } from 'node:crypto'
import { readdir, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { makeFolders } from '../util/make-folders.ts'
import { fsError } from './fs-errors.ts'
import { processAlive } from './private-temp.ts'

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
  if (!swept.has(dir)) {
    swept.add(dir)
    await removeOrphans(dir)
  }
  return dir
}

/** Folders this process has swept of orphans (see removeOrphans). */
const swept = new Set<string>()

/** A file one process owns: `<name>.<pid>.<random>.haul|.racy|.tmp`. */
const OWNED = /\.(\d+)\.[0-9a-z]+\.(?:haul|racy|tmp)$/

/** Removes the files in `dir` owned by a process that is gone. Failures are ignored: it is tidying. */
export async function removeOrphans(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  await Promise.all(
    names.map(async (name) => {
      const pid = OWNED.exec(name)?.[1]
      if (pid === undefined || processAlive(Number(pid))) return
      await rm(join(dir, name), { force: true }).catch(() => {})
    }),
  )
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
 * Files this process serves from (a published file's descriptor): pruneFolder leaves them, since
 * their readers reopen them (src/storage/open-files.ts). Counted: two publishes may share one.
 */
const pinned = new Map<string, number>()

/** Keeps `path` from pruneFolder until the returned function is called. */
export function pin(path: string): () => void {
  pinned.set(path, (pinned.get(path) ?? 0) + 1)
  let done = false
  return () => {
    if (done) return
    done = true
    const n = pinned.get(path)! - 1
    if (n === 0) pinned.delete(path)
    else pinned.set(path, n)
  }
}

/**
 * What pruneFolder knows of a folder without reading it: the files it left there, and the
 * files written since (each call is one), so a folder under its bound is not listed again.
 */
interface FolderCount {
  files: number
  written: number
  /** Listed again only once `files + written` passes this. */
  next: number
}
const counts = new Map<string, FolderCount>()

/**
 * Keeps the folder within `keep` files, oldest modification time out, pinned files (see pin)
 * never. Called once per file written there. The folder is listed only when this process's count
 * says it may be over (its first call, then once `keep` is passed), and then pruned to `keep`
 * less an eighth, so at most one call in `keep / 8` lists and stats the folder, even when pinned
 * files hold it over `keep`. Files other processes write count once it is listed again.
 */
export async function pruneFolder(dir: string, keep = MAX_KEPT_DESCRIPTORS): Promise<void> {
  const slack = Math.max(1, Math.floor(keep / 8))
  const known = counts.get(dir)
  if (known !== undefined && known.files + ++known.written <= known.next) return
  const names = await readdir(dir).catch(() => [] as string[])
  let left = names.length
  if (left > keep) {
    const free = names.filter((n) => !pinned.has(join(dir, n)))
    const dated = await Promise.all(
      free.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
    )
    dated.sort((a, b) => a.t - b.t)
    for (const { n } of dated.slice(0, Math.max(0, left - (keep - slack)))) {
      await rm(join(dir, n), { force: true })
      left--
    }
  }
  counts.set(dir, { files: left, written: 0, next: Math.max(keep, left + slack) })
}
