/**
 * Turning a verified pack into the folder it describes, inside the destination's staging folder
 * (`<dest>/.haul-incoming`), then moving the tree into place.
 *
 * Files are cut out of the pack from its end backwards, and the pack is truncated behind them
 * every TRUNCATE_STEP bytes (once those files are on disk, fsync'd, and a marker says how far
 * the work got), so the disk holds about the collection's size plus one step, not twice the
 * collection. A crash at any point resumes from the marker: the pack still holds every file
 * the marker does not count. Nothing appears under its final name until the whole tree is
 * built: the last step renames the staged entries into the destination, whole folders at once
 * where the destination has none, which a crash can interrupt and a resume finishes.
 *
 * Paths go through the pinned destination folder (src/storage/dest-folder.ts), files are opened
 * with O_NOFOLLOW, and every folder on the way is checked to be a folder, not a link: a swap
 * by someone who can write the destination makes the fetch fail, never write elsewhere.
 */
import { constants } from 'node:fs'
import { chmod, lstat, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DestinationExistsError, DestinationInvalidError } from '../errors.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { fsError } from '../storage/fs-errors.ts'
import { entryAt, kindOf, O_NOFOLLOW } from '../storage/safe-open.ts'
import { syncFiles } from '../storage/sync-fs.ts'
import { syncDir } from '../util/sync-dir.ts'
import type { CutRequest } from '../workers/messages.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Manifest, ManifestEntry } from './manifest.ts'
import { STAGING_NAME } from './names.ts'

/** Pack bytes cut out between truncations (and fsyncs of the files cut out). */
export const TRUNCATE_STEP = 256 * 1024 * 1024
/** Entries cut out of the pack per step (a step is also at most TRUNCATE_STEP bytes). */
const BATCH_ENTRIES = 1024

export interface PlaceOptions {
  /** Replace files already in the destination that hold other data. */
  readonly overwrite: boolean
  /** Create the manifest's symbolic links (all point inside the tree); otherwise skip them. */
  readonly symlinks: boolean
  /** Sync every file before the tree moves into place (CollectionFetchOptions.sync). */
  readonly sync: boolean
  readonly pool: WorkerPool
  readonly signal: AbortSignal
  /** A file (or link) now under its final name. */
  readonly onPlaced?: (entry: ManifestEntry) => void
}

/** The staging folder's paths, through the pinned destination. */
export function stagingPaths(folder: DestFolder): {
  stage: string
  pack: string
  tree: string
  marker: string
  /** Made as the move into the destination begins: its mtime dates every file moved. */
  moving: string
  /** The staging folder's real path: for another process (`sync`), to which /proc/self/fd/… means its own. */
  shared: string
} {
  const stage = folder.at(STAGING_NAME)
  return {
    stage,
    pack: `${stage}/pack`,
    tree: `${stage}/tree`,
    marker: `${stage}/unpacked`,
    moving: `${stage}/moving`,
    shared: folder.file(STAGING_NAME),
  }
}

/**
 * Refuses a destination where the collection would replace something without leave: a file
 * where a file goes holding other data (DESTINATION_EXISTS unless `overwrite`), anything but a
 * folder where a folder goes, a link or special file anywhere (DESTINATION_INVALID). Entries
 * under a folder the destination lacks are not looked at. Runs before anything is written.
 */
export async function checkDestination(folder: DestFolder, m: Manifest, overwrite: boolean): Promise<void> {
  const missing = new Set<string>()
  let clashes = 0
  let first: string | undefined
  for (const e of m.entries) {
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
    if (e.kind === 'dir' && s.isDirectory()) continue
    if (e.kind !== 'dir' && s.isFile()) {
      clashes++
      first ??= e.path
      continue
    }
    throw new DestinationInvalidError(
      `${folder.file(e.path)} is ${kindOf(s)} where the collection has a ${e.kind === 'dir' ? 'folder' : 'file'}: move it away, or fetch into another folder`,
    )
  }
  if (clashes > 0 && !overwrite) {
    throw new DestinationExistsError(
      `${clashes} of the collection's files already exist in ${folder.path} (the first: ${first}): pass --force (overwrite: true) to replace them, or fetch into another folder`,
    )
  }
}

/** How far an earlier run cut the pack: entries from this index on are in the tree. */
export async function readMarker(marker: string, packCid: string): Promise<number | undefined> {
  const text = await readFile(marker, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  try {
    const m = JSON.parse(text) as { cid?: unknown; next?: unknown }
    return m.cid === packCid && Number.isSafeInteger(m.next) ? (m.next as number) : undefined
  } catch {
    return undefined
  }
}

async function writeMarker(marker: string, packCid: string, next: number): Promise<void> {
  const tmp = `${marker}.tmp`
  await writeFile(tmp, JSON.stringify({ cid: packCid, next }), { flush: true })
  await rename(tmp, marker)
}

/**
 * The worker task that cuts `batch` (consecutive entries, so their bytes are one range of the
 * pack) into the staging tree; links only when they are created.
 */
export function cutRequest(
  batch: readonly ManifestEntry[],
  paths: { readonly pack: string; readonly tree: string },
  symlinks: boolean,
): Omit<CutRequest, 'kind'> {
  const files: Array<{ path: string; offset: number; size: number; mode: number }> = []
  const links: Array<{ path: string; target: string }> = []
  for (const e of batch) {
    if (e.kind === 'file')
      files.push({ path: e.path, offset: e.offset, size: e.size, mode: placedMode(e.mode) })
    else if (e.kind === 'symlink' && symlinks) links.push({ path: e.path, target: e.target! })
  }
  const last = files[files.length - 1]
  return {
    pack: paths.pack,
    tree: paths.tree,
    files,
    end: last === undefined ? 0 : last.offset + last.size,
    links,
  }
}

/** Where the pack's bytes of the entries before `next` end (what a truncation keeps). */
function packEndBefore(m: Manifest, next: number): number {
  for (let i = next - 1; i >= 0; i--) {
    const e = m.entries[i]!
    if (e.kind === 'file') return e.offset + e.size
  }
  return 0
}

/** The staged paths of the files among entries in `ranges` ([from, to) each), read as synced. */
function filesIn(
  m: Manifest,
  tree: string,
  ranges: ReadonlyArray<readonly [number, number]>,
): Iterable<string> & { length: number } {
  let length = 0
  for (const [from, to] of ranges) for (let i = from; i < to; i++) if (m.entries[i]!.kind === 'file') length++
  return {
    length,
    *[Symbol.iterator]() {
      for (const [from, to] of ranges) {
        for (let i = from; i < to; i++)
          if (m.entries[i]!.kind === 'file') yield `${tree}/${m.entries[i]!.path}`
      }
    },
  }
}

/**
 * The mode a file or folder of a received collection gets: the manifest's permission bits, without
 * setuid, setgid and sticky. Those come from a peer, and a receiver running as root would
 * otherwise keep a setuid program a sender planted (as `tar` does for root unless told not to).
 */
export function placedMode(manifestMode: number): number {
  return manifestMode & 0o777
}

/** The staging tree's folders (all of them, before any file is cut). */
export async function makeTree(paths: ReturnType<typeof stagingPaths>, m: Manifest): Promise<void> {
  await mkdirChecked(paths.tree, 0o700)
  // Staged with their own modes, plus what haul needs to write into them (see moveIntoPlace).
  for (const e of m.entries)
    if (e.kind === 'dir') await mkdirChecked(`${paths.tree}/${e.path}`, placedMode(e.mode) | 0o700)
}

/**
 * Cuts every entry from index `from` down to `cutAlready` out of the pack into the staging tree
 * (see the module comment), then syncs every file of the tree. `from` is the marker's count, or
 * the entry count for a fresh pack; entries before `cutAlready` were cut while the pack arrived
 * (early-cut.ts). The writing runs on the worker pool (src/workers/cut-files.ts), a batch per
 * thread at once.
 */
export async function cutPack(
  paths: ReturnType<typeof stagingPaths>,
  m: Manifest,
  packCid: string,
  from: number,
  opts: PlaceOptions,
  cutAlready = 0,
): Promise<void> {
  await makeTree(paths, m)
  // Nothing left to cut (a resume after the last sync): the pack is gone already.
  if (from === 0) return
  let pack = m.packSize > 0 ? await open(paths.pack, constants.O_RDWR | O_NOFOLLOW) : undefined
  try {
    let next = from
    let cut = 0 // pack bytes cut out since the last truncation
    // Entries from here on are synced; those before cutAlready (cut while the pack arrived) are
    // synced with the first step's.
    let syncedFrom = from
    let unsyncedFront = cutAlready
    while (next > cutAlready) {
      opts.signal.throwIfAborted()
      const round: Promise<void>[] = []
      for (let t = 0; t < opts.pool.threads && next > cutAlready; t++) {
        // A batch: entries below `next`, up to BATCH_ENTRIES of them or TRUNCATE_STEP bytes.
        let lo = next
        let bytes = 0
        while (lo > cutAlready && next - lo < BATCH_ENTRIES && bytes < TRUNCATE_STEP) {
          lo--
          bytes += m.entries[lo]!.size
        }
        round.push(
          opts.pool.cutFiles(cutRequest(m.entries.slice(lo, next), paths, opts.symlinks), {
            signal: opts.signal,
          }),
        )
        cut += bytes
        next = lo
      }
      await Promise.all(round)
      if (cut >= TRUNCATE_STEP && pack !== undefined) {
        await syncFiles(
          paths.shared,
          filesIn(m, paths.tree, [
            [0, unsyncedFront],
            [next, syncedFrom],
          ]),
        )
        syncedFrom = next
        unsyncedFront = 0
        await writeMarker(paths.marker, packCid, next)
        await pack.truncate(packEndBefore(m, next))
        cut = 0
      }
    }
    // Every file is cut out: the pack goes before the files are synced, so what of it is still
    // only in memory is never written back. Its marker goes first (and durably): a crash from
    // here on finds no marker, fetches the pack again and cuts everything again, never trusting
    // files that may not have reached the disk.
    await pack?.close()
    pack = undefined
    await rm(paths.marker, { force: true })
    await syncDir(paths.stage)
    await rm(paths.pack, { force: true })
    // Unsynced, the files get no marker: a crash before the move ends cuts them all again.
    if (!opts.sync) return
    await syncFiles(
      paths.shared,
      filesIn(m, paths.tree, [
        [0, unsyncedFront],
        [cutAlready, syncedFrom],
      ]),
    )
    await writeMarker(paths.marker, packCid, 0)
  } finally {
    await pack?.close()
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
    if (err.code !== 'EEXIST') throw fsError(err, paths.moving)
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
    opts.signal.throwIfAborted()
    if (underOurs(e.path)) {
      // Arrived with a folder moved whole.
      if (e.kind === 'dir') ours.add(e.path)
      else if (e.kind === 'file' || opts.symlinks) opts.onPlaced?.(e)
      continue
    }
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
    if (there !== undefined && !opts.overwrite) {
      throw new DestinationExistsError(
        `${folder.file(e.path)} appeared during the fetch: pass --force to replace it`,
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

/** Removes the staging folder (the pack, the marker, the emptied tree). */
export async function removeStaging(paths: ReturnType<typeof stagingPaths>): Promise<void> {
  await rm(paths.stage, { recursive: true, force: true }).catch((err) => {
    throw fsError(err, paths.stage)
  })
}

/** A folder of the staging tree with `mode` (chmod, so the umask does not narrow it). */
async function mkdirChecked(path: string, mode: number): Promise<void> {
  await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw fsError(err, path)
  })
  const s = await lstat(path)
  if (!s.isDirectory()) throw new DestinationInvalidError(`${path} is ${kindOf(s)}, not the folder haul made`)
  if ((s.mode & 0o7777) !== mode) await chmod(path, mode)
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
