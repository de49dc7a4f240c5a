/**
 * Moving a staged collection (unpack.ts) into its destination: the checks before anything is
 * written (what is there, free space, names the file system folds together), the move itself,
 * and on a resume the check of what an interrupted move had placed.
 *
 * The move renames the staged entries into the destination, whole folders at once where the
 * destination has none; a crash can interrupt it and a resume finishes it. Every folder on the
 * way is checked to be a folder, not a link: a swap by someone who can write the destination
 * makes the fetch fail, never write elsewhere.
 */
import { randomBytes } from 'node:crypto'
import { chmod, lstat, readlink, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import {
  DestinationExistsError,
  DestinationInvalidError,
  ManifestInvalidError,
  NoSpaceError,
} from '../errors.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { freeBytes } from '../storage/free-space.ts'
import { fsError } from '../storage/fs-errors.ts'
import { entryAt, kindOf } from '../storage/safe-open.ts'
import { foldedCollisions, type Manifest } from './manifest.ts'
import { STAGING_NAME } from './names.ts'
import { type PlaceOptions, placedMode, shownStagingPath, type stagingPaths } from './unpack.ts'

/**
 * Refuses a destination where the collection would replace something without leave: a file or
 * a link where a file or a link goes (DESTINATION_EXISTS unless `overwrite`; the collection's
 * own link there is no clash, and links are looked at only with `symlinks`), anything but a
 * folder where a folder goes, a special file anywhere (DESTINATION_INVALID). Entries under a
 * folder the destination lacks are not looked at. Runs before anything is written.
 */
export async function checkDestination(
  folder: DestFolder,
  m: Manifest,
  opts: { overwrite: boolean; symlinks: boolean },
): Promise<void> {
  const missing = new Set<string>()
  let clashes = 0
  let first: string | undefined
  const rootDev = (await entryAt(folder.at('.'), folder.path))?.dev
  for (const e of m.entries) {
    // Links are made only with `symlinks`: otherwise whatever is at their paths stays.
    if (e.kind === 'symlink' && !opts.symlinks) continue
    const slash = e.path.lastIndexOf('/')
    if (slash > 0 && missing.has(e.path.slice(0, slash))) {
      if (e.kind === 'dir') missing.add(e.path)
      continue
    }
    const s = await entryAt(folder.at(e.path), e.path)
    if (s === undefined) {
      if (e.kind === 'dir') missing.add(e.path)
      continue
    }
    if (e.kind === 'dir' && s.isDirectory()) {
      // Files go in place by a rename from the staging folder, which cannot cross into another
      // file system (a mount point, a container's volume): refused now, not after the download.
      if (rootDev !== undefined && s.dev !== rootDev) {
        throw new DestinationInvalidError(
          `${folder.file(e.path)} is on another file system than ${folder.path} (a mount point): haul puts a folder's files in place by renaming them from ${folder.file(STAGING_NAME)}, which cannot cross file systems: fetch into a folder on one file system (-o <path>)`,
        )
      }
      continue
    }
    // A link is replaced as an entry, never followed: where a file or a link goes it is a clash
    // like a file, unless it is the very link the collection has (an earlier fetch's).
    if (e.kind !== 'dir' && (s.isFile() || s.isSymbolicLink())) {
      if (await isSameLink(folder, e)) continue
      clashes++
      first ??= e.path
      continue
    }
    throw new DestinationInvalidError(
      `${folder.file(e.path)} is ${kindOf(s)} where the collection has a ${e.kind === 'dir' ? 'folder' : e.kind === 'symlink' ? 'link' : 'file'}: move it away, or fetch into another folder`,
    )
  }
  if (clashes > 0 && !opts.overwrite) {
    throw new DestinationExistsError(
      `${clashes} of the collection's files already exist in ${folder.path} (the first: ${first}): pass --force (overwrite: true) to replace them (what still matches the new files is kept, not fetched again), or fetch into another folder`,
    )
  }
}

/**
 * The files an interrupted move had put in the destination that are not as it left them: gone,
 * not a file, another size, or modified after the move began (a cut file's mtime is older than
 * the `moving` stamp, and a rename keeps it). Files still staged are not looked at.
 */
export async function placedDamage(
  folder: DestFolder,
  paths: ReturnType<typeof stagingPaths>,
  m: Manifest,
): Promise<string[]> {
  const since = (await lstat(paths.moving).catch(() => undefined))?.mtimeMs
  const damaged: string[] = []
  for (const e of m.entries) {
    if (e.kind !== 'file' || (await entryAt(`${paths.tree}/${e.path}`, e.path)) !== undefined) continue
    const there = await entryAt(folder.at(e.path), folder.file(e.path))
    const intact =
      there?.isFile() === true && there.size === e.size && (since === undefined || there.mtimeMs <= since)
    if (!intact) damaged.push(e.path)
  }
  return damaged
}

/**
 * Moves the staged tree into the destination (see the module comment), then sets the folders'
 * modes (kept open while files went in). Idempotent: a resume after a crash in here finishes it.
 * The first run stamps the staging folder (`moving`): what it moved is judged against that time
 * on a resume (placedDamage).
 */
export async function moveIntoPlace(
  folder: DestFolder,
  paths: ReturnType<typeof stagingPaths>,
  m: Manifest,
  opts: PlaceOptions,
): Promise<void> {
  await writeFile(paths.moving, '', { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw fsError(err, shownStagingPath(paths, paths.moving))
  })
  /** Folders this fetch created (moved whole, with everything below them). */
  const ours = new Set<string>()
  const underOurs = (path: string): boolean => {
    for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1)) {
      if (ours.has(path.slice(0, at))) return true
    }
    return false
  }
  for (const e of m.entries) {
    if (underOurs(e.path)) {
      // Arrived with a folder moved whole: only reported, so a cancel now changes nothing.
      if (e.kind === 'dir') ours.add(e.path)
      else if (e.kind === 'file' || opts.symlinks) opts.onPlaced?.(e)
      continue
    }
    opts.signal.throwIfAborted()
    const from = `${paths.tree}/${e.path}`
    const to = folder.at(e.path)
    const staged = await entryAt(from, e.path)
    if (staged === undefined) continue
    await checkParents(folder, e.path)
    const there = await entryAt(to, folder.file(e.path))
    if (e.kind === 'dir') {
      if (there === undefined) {
        await renameChecked(from, to, folder.file(e.path))
        ours.add(e.path)
      } else if (!there.isDirectory()) {
        throw new DestinationInvalidError(
          `${folder.file(e.path)} is ${kindOf(there)} where the collection has a folder`,
        )
      }
      continue
    }
    if (there !== undefined && !there.isFile() && !there.isSymbolicLink()) {
      throw new DestinationInvalidError(
        `${folder.file(e.path)} is ${kindOf(there)}: move it away, then fetch again`,
      )
    }
    if (there !== undefined && !opts.overwrite && !(await isSameLink(folder, e))) {
      throw new DestinationExistsError(
        `${folder.file(e.path)} appeared during the fetch: pass --force (overwrite: true) to replace it`,
      )
    }
    await renameChecked(from, to, folder.file(e.path))
    opts.onPlaced?.(e)
  }
  // A folder whose mode keeps its owner from writing in it (0o555) gets it only now, once its
  // files are in. Folders moved by an earlier run of a resumed fetch are not known here: they
  // keep the owner's write bit.
  for (const e of m.entries) {
    if (e.kind === 'dir' && ours.has(e.path) && (e.mode & 0o700) !== 0o700) {
      await chmod(folder.at(e.path), placedMode(e.mode)).catch(() => {})
    }
  }
}

/** True when the destination holds, at `e`'s path, the link `e` is (the same target). */
async function isSameLink(folder: DestFolder, e: Manifest['entries'][number]): Promise<boolean> {
  if (e.kind !== 'symlink') return false
  return (await readlink(folder.at(e.path)).catch(() => undefined)) === e.target
}

/** Every folder above `path` in the destination is a folder, not a link to elsewhere. */
async function checkParents(folder: DestFolder, path: string): Promise<void> {
  let at = path.lastIndexOf('/')
  while (at > 0) {
    const dir = path.slice(0, at)
    const s = await entryAt(folder.at(dir), dir)
    if (s !== undefined && !s.isDirectory()) {
      throw new DestinationInvalidError(
        `${folder.file(dir)} is ${kindOf(s)}, not a folder: haul does not write through it`,
      )
    }
    at = dir.lastIndexOf('/')
  }
}

/**
 * Renames a staged entry to `to` (`shown`: its path as the user knows it). A folder of this
 * user's own that its mode keeps read-only (a collection's `555` folder, made by an earlier
 * fetch) is made writable for the moment of the rename, its mode put back.
 */
async function renameChecked(from: string, to: string, shown: string): Promise<void> {
  try {
    await rename(from, to)
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw fsError(err, shown)
    const parent = await lstat(dirname(to)).catch(() => undefined)
    const mine = parent?.isDirectory() === true && parent.uid === process.getuid?.()
    if (!mine || (parent.mode & 0o200) !== 0) throw fsError(err, shown)
    await chmod(dirname(to), (parent.mode & 0o7777) | 0o200)
    try {
      await rename(from, to)
    } catch (again) {
      throw fsError(again, shown)
    } finally {
      await chmod(dirname(to), parent.mode & 0o7777).catch(() => {})
    }
  }
}

/**
 * Paths that differ only in case (or Unicode normalization) are one file where the file system
 * folds them: refused there, named in the error; kept apart elsewhere.
 */
export async function refuseFoldedCollisions(m: Manifest, stage: string): Promise<void> {
  const pairs = foldedCollisions(m)
  if (pairs.length === 0) return
  const probe = `${stage}/case-${randomBytes(4).toString('hex')}-Aa`
  await writeFile(probe, '')
  try {
    const folded = (await entryAt(probe.replace(/-Aa$/, '-aA'))) !== undefined
    if (!folded) return
  } finally {
    await rm(probe, { force: true })
  }
  const [a, b] = pairs[0]!
  throw new ManifestInvalidError(
    `the collection's manifest was refused, nothing was written: ${JSON.stringify(a)} and ${JSON.stringify(b)} are one file on this file system (it ignores case)${pairs.length > 1 ? `, and ${pairs.length - 1} more pairs` : ''}; fetch into a case-sensitive folder`,
  )
}

/**
 * A fresh fetch of a collection needs twice its files' bytes free at its peak: files are cut
 * out of the downloaded pack as it arrives, and the pack is deleted only once all are placed.
 * Checked before anything is made, so a folder that cannot fit fails at once, not part-way.
 * (The pack's own part file checks its 1x again as it opens; a resume checks only that.)
 */
export async function checkRoom(path: string, shown: string, packSize: number): Promise<void> {
  const free = await freeBytes(path)
  const needed = 2 * packSize
  if (free !== undefined && free < needed) {
    throw new NoSpaceError(
      `${shown} has ${free} bytes free but the folder needs ${needed} while it arrives (its ${packSize} bytes, and as much again while files are cut out of the download): free space or choose another destination`,
    )
  }
}
