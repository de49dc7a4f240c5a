/**
 * Turning a verified pack into the folder it describes, inside the destination's staging folder
 * (`<dest>/.haul-incoming`); place.ts then moves the tree into place.
 *
 * Files are cut out of the pack from its end backwards, and the pack is truncated behind them
 * every TRUNCATE_STEP bytes (once those files are on disk, fsync'd, and a marker says how far
 * the work got), so the disk holds about the collection's size plus one step, not twice the
 * collection. A crash at any point resumes from the marker: the pack still holds every file
 * the marker does not count. Nothing appears under its final name until the whole tree is
 * built.
 *
 * Paths go through the pinned destination folder (src/storage/dest-folder.ts), files are opened
 * with O_NOFOLLOW, and every folder on the way is checked to be a folder, not a link: a swap
 * by someone who can write the destination makes the fetch fail, never write elsewhere.
 */
import { constants } from 'node:fs'
import { chmod, lstat, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { DestinationInvalidError } from '../errors.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { fsError } from '../storage/fs-errors.ts'
import { kindOf, O_NOFOLLOW } from '../storage/safe-open.ts'
import { syncFiles } from '../storage/sync-fs.ts'
import { syncDir } from '../util/sync-dir.ts'
import type { CutRequest } from '../workers/messages.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Manifest, ManifestEntry } from './manifest.ts'
import { CHANGED_NAME, OWNER_NAME, STAGING_NAME } from './names.ts'

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
  /** Names the collection (its manifest's content id, hex) whose fetch the staging folder holds. */
  owner: string
  /** Names the collection (hex) a fetch that failed CONTENT_CHANGED left staged: another one may clear it. */
  changed: string
  /** Made as the move into the destination begins: its mtime dates every file moved. */
  moving: string
  /** The staging folder's real path: for messages, and for another process (`sync`), to which /proc/self/fd/… means its own. */
  shared: string
} {
  const stage = folder.at(STAGING_NAME)
  return {
    stage,
    pack: `${stage}/pack`,
    tree: `${stage}/tree`,
    marker: `${stage}/unpacked`,
    owner: `${stage}/${OWNER_NAME}`,
    changed: `${stage}/${CHANGED_NAME}`,
    moving: `${stage}/moving`,
    shared: folder.file(STAGING_NAME),
  }
}

/**
 * The real path of `path`, one of the staging folder's (`stagingPaths`), for messages: those
 * paths go through the pinned folder's `/proc/self/fd/<n>`, which names nothing a user knows.
 */
export function shownStagingPath(
  paths: { readonly stage: string; readonly shared: string },
  path: string,
): string {
  return path.startsWith(paths.stage) ? `${paths.shared}${path.slice(paths.stage.length)}` : path
}

/**
 * How far an earlier run cut the pack: entries from `next` on are in the tree, synced. Not
 * `synced`: every entry is in the tree (`next` 0) and the pack is gone, but the files were not
 * synced yet, so they count only once they hash to the pack again.
 */
export interface CutMarker {
  readonly next: number
  readonly synced: boolean
}

export async function readMarker(marker: string, packCid: string): Promise<CutMarker | undefined> {
  const text = await readFile(marker, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  try {
    const m = JSON.parse(text) as { cid?: unknown; next?: unknown; synced?: unknown }
    if (m.cid !== packCid || !Number.isSafeInteger(m.next)) return undefined
    return { next: m.next as number, synced: m.synced !== false }
  } catch {
    return undefined
  }
}

async function writeMarker(marker: string, packCid: string, next: number, synced = true): Promise<void> {
  const tmp = `${marker}.tmp`
  await writeFile(tmp, JSON.stringify({ cid: packCid, next, ...(synced ? {} : { synced: false }) }), {
    flush: true,
  })
  await rename(tmp, marker)
}

/**
 * After a resume found every file cut but unsynced (CutMarker) and re-hashed them: synced now,
 * as cutPack would have, and the marker says so.
 */
export async function syncTree(
  paths: ReturnType<typeof stagingPaths>,
  m: Manifest,
  packCid: string,
  opts: Pick<PlaceOptions, 'sync'>,
): Promise<void> {
  if (!opts.sync) return
  await syncFiles(paths.shared, filesIn(m, paths.tree, [[0, m.entries.length]]))
  await writeMarker(paths.marker, packCid, 0)
}

/**
 * The worker task that cuts `batch` (consecutive entries, so their bytes are one range of the
 * pack) into the staging tree; links only when they are created. `shared` is the staging
 * folder's real path, which the task's messages name.
 */
export function cutRequest(
  batch: readonly ManifestEntry[],
  paths: { readonly pack: string; readonly tree: string; readonly stage: string; readonly shared: string },
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
    shownPack: shownStagingPath(paths, paths.pack),
    shownTree: shownStagingPath(paths, paths.tree),
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
  const shown = shownStagingPath(paths, paths.tree)
  await mkdirChecked(paths.tree, 0o700, shown)
  // Staged with their own modes, plus what haul needs to write into them (see moveIntoPlace, place.ts).
  for (const e of m.entries)
    if (e.kind === 'dir')
      await mkdirChecked(`${paths.tree}/${e.path}`, placedMode(e.mode) | 0o700, `${shown}/${e.path}`)
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
    // only in memory is never written back. The marker says so first (and durably): a crash from
    // here on re-hashes the tree against the pack's content id (a power cut may have lost what
    // did not reach the disk) and fetches the pack again only if it does not match.
    await pack?.close()
    pack = undefined
    await writeMarker(paths.marker, packCid, 0, false)
    await syncDir(paths.stage)
    await rm(paths.pack, { force: true })
    // Unsynced, the files keep that marker: a crash before the move ends re-hashes them.
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

/** Removes the staging folder (the pack, the marker, the emptied tree). */
export async function removeStaging(paths: ReturnType<typeof stagingPaths>): Promise<void> {
  await rm(paths.stage, { recursive: true, force: true }).catch((err) => {
    throw fsError(err, paths.shared)
  })
}

/**
 * A folder of the staging tree at `path` with `mode` (chmod, so the umask does not narrow it),
 * made or found, never a link; `shown` is its real path, for messages.
 */
async function mkdirChecked(path: string, mode: number, shown: string): Promise<void> {
  await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw fsError(err, shown)
  })
  const s = await lstat(path)
  if (!s.isDirectory())
    throw new DestinationInvalidError(`${shown} is ${kindOf(s)}, not the folder haul made`)
  if ((s.mode & 0o7777) !== mode) await chmod(path, mode)
}
