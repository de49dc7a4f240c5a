import { constants } from 'node:fs'
import { cidToString } from '../descriptor/cid.ts'
import { DestinationExistsError } from '../errors.ts'
import { DestFolder, nameIn } from '../storage/dest-folder.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import { Journal, type JournalOptions, journalPath, removeJournal } from '../storage/journal.ts'
import { PartFile } from '../storage/part-file.ts'
import { entryAt, openOwnFile, unlinkEntry } from '../storage/safe-open.ts'
import { seedPartFromDestination } from './seed-part.ts'

/**
 * How a fetch used what an earlier run left at the destination.
 * - `fresh`: nothing was there.
 * - `journal`: the journal named this content and this part file; after a
 *   clean stop its chunks were kept without reading them, after a crash
 *   (`unclean-stop`) they were re-hashed and kept if they match (plus a
 *   re-hash of any damaged bitmap page). Announced (onResume) before that
 *   re-hash: the result's count is what was kept.
 * - `rehash`: a part file without a usable journal, or one changed since a
 *   clean stop (`part-modified`: then only the chunks the journal named), or
 *   one of another size without a journal (`part-size`), or holding verified
 *   chunks of other content (`other-content`: an older version of the file,
 *   its fetch given up for this one); those chunks were re-hashed against the
 *   verified leaves and the ones that match were kept (a file that grew, or
 *   changed in places, keeps what is unchanged at the same offsets).
 *   A file fetched with `overwrite` over other data at its destination
 *   checks that data the same way (`destination`: ./seed-part.ts), and a
 *   folder fetched again over an earlier copy of it the files already there
 *   (`local-files`: src/collection/seed-pack.ts).
 * - `restart`: what was there holds nothing to check (an empty part file, or
 *   a journal of other content with no chunk verified); it was discarded.
 * - `present`: the destination itself already held this content (checked by
 *   its content id); nothing was fetched or written.
 */
export interface ResumeInfo {
  readonly mode: 'fresh' | 'journal' | 'rehash' | 'restart' | 'present'
  readonly reason?:
    | 'journal-missing'
    | 'journal-damaged'
    | 'journal-disabled'
    | 'small'
    | 'part-replaced'
    | 'part-modified'
    | 'unclean-stop'
    | 'other-content'
    | 'part-size'
    | 'local-files'
    | 'destination'
  /** Verified chunks found on disk (for `rehash`: once the re-hash has finished). */
  readonly chunksKept: number
  readonly bytesKept: number
  /**
   * `unclean-stop`: kept chunks an earlier run already checked after the crash (its check was cut
   * short too), not checked again while the part file is unchanged.
   */
  readonly chunksChecked?: number
}

/**
 * Most ranges a resume hands the re-hash: the chunks a journal kept, in runs, the last run
 * stretched over what lies beyond (16 bytes each: 16 KiB at most, whatever the file's size).
 */
const MAX_REHASH_RANGES = 1024

/**
 * Chunk ranges [start, end) whose bytes in the part file must be re-hashed before they count;
 * `kept`: the journal's chunks in the range, which count unless their bytes do not match.
 */
export type RehashRanges = Array<{ start: number; end: number; kept?: true }>

export interface OpenedStorage {
  readonly part: PartFile
  readonly journal: Journal
  readonly resume: ResumeInfo
  readonly rehash: RehashRanges
}

export interface StorageRequest {
  readonly dest: string
  readonly cid: Uint8Array
  readonly headerBytes: Uint8Array
  readonly totalSize: number
  readonly leafCount: number
  readonly journal: JournalOptions
  /** Staging memory for O_DIRECT writes of the part file (undefined: buffered writes). */
  readonly directWrites?: DirectWriteSlots | undefined
  /**
   * Discard a part file whose journal vouches for chunks of other content (the caller's
   * `overwrite`); without it such a part file is kept and the fetch fails DESTINATION_EXISTS.
   */
  readonly overwrite: boolean
}

/**
 * Opens `<dest>.part` and its journal for `req.cid`, deciding what an earlier
 * run left is worth. Order matters for crashes: a stale journal is removed
 * before the part file it described is emptied, and a new journal is created
 * only once the part file is open (the journal records its inode).
 *
 * The destination folder is pinned first (src/storage/dest-folder.ts): every
 * file here is named by the folder's real path as resolved now, each step
 * checks the folder is still the one the fetch started in, and the part file
 * keeps the pin for its final rename.
 */
export async function openStorage(req: StorageRequest): Promise<OpenedStorage> {
  const folder = await DestFolder.pin(req.dest)
  let handedOver = false
  try {
    const opened = await openPinned(req, folder, () => {
      handedOver = true
    })
    return opened
  } finally {
    if (!handedOver) await folder.close()
  }
}

async function openPinned(
  req: StorageRequest,
  folder: DestFolder,
  handOver: () => void,
): Promise<OpenedStorage> {
  const jpath = journalPath(folder.file(nameIn(req.dest)))
  const changed = await takeChanged(folder.file(nameIn(req.dest)))
  const all: RehashRanges = req.leafCount > 0 ? [{ start: 0, end: req.leafCount }] : []
  let existing = await PartFile.inspect(req.dest, folder)
  let decision: { mode: ResumeInfo['mode']; reason?: ResumeInfo['reason'] }
  /** What a rehash covers: every chunk, unless a journal says which could be on disk. */
  let ranges = all
  await folder.check()

  if (existing === undefined) {
    await removeJournal(jpath)
    // Over other data at the destination (overwrite): its bytes are checked for chunks to keep.
    const seeded =
      req.overwrite && req.leafCount > 0 ? await seedPartFromDestination(folder, nameIn(req.dest)) : 0
    if (seeded > 0) existing = await PartFile.inspect(req.dest, folder)
    decision = existing === undefined ? { mode: 'fresh' } : { mode: 'rehash', reason: 'destination' }
  } else if (!keepsJournal(req)) {
    await removeJournal(jpath)
    decision =
      existing.size === req.totalSize
        ? { mode: 'rehash', reason: req.journal.enabled ? 'small' : 'journal-disabled' }
        : existing.size > 0
          ? { mode: 'rehash', reason: 'part-size' }
          : { mode: 'restart', reason: 'part-size' }
  } else {
    const loaded = await Journal.load(jpath, req.journal)
    if (loaded.status === 'ok') {
      const j = loaded.journal
      const sameContent = Buffer.from(j.cid).equals(req.cid)
      const samePart = j.part?.dev === existing.dev && j.part?.ino === existing.ino
      // A sealed journal (a clean stop) says the part file's mtime and ctime exactly: a part file changed
      // since is re-hashed. After a crash nothing says whether anything wrote it since (haul's
      // own last writes ran ahead of the journal): the journal is kept and its chunks re-hashed.
      const sealed = j.sealedPart
      const modified =
        sameContent &&
        samePart &&
        sealed !== undefined &&
        (existing.mtimeNs !== sealed.mtimeNs ||
          (sealed.ctimeNs !== undefined && existing.ctimeNs !== sealed.ctimeNs))
      if (sameContent && samePart && existing.size === req.totalSize && !modified) {
        // A destination that cannot be opened now (full disk, permissions) keeps its journal for later.
        handOver()
        const part = await PartFile.open(req.dest, req.totalSize, { direct: req.directWrites, folder }).catch(
          async (err) => {
            await j.close()
            throw err
          },
        )
        j.attach(() => part.datasync())
        const rehash: RehashRanges = loaded.damagedPages.map((p) => j.pageRange(p))
        let chunksChecked = 0
        if (sealed === undefined) {
          // What an earlier check after the crash got through, on this very part file, stays checked.
          const from = j.checkedThrough(existing)
          chunksChecked = j.chunksBelow(from)
          for (const r of j.keptRanges(MAX_REHASH_RANGES)) {
            if (r.end > from) rehash.push({ start: Math.max(r.start, from), end: r.end, kept: true })
          }
        }
        // In order: the check notes how far it got as the index below which all is checked.
        rehash.sort((a, b) => a.start - b.start)
        return {
          part,
          journal: j,
          resume: {
            mode: 'journal',
            ...(sealed === undefined ? { reason: 'unclean-stop' as const } : {}),
            chunksKept: j.chunks,
            bytesKept: j.bytes,
            ...(chunksChecked > 0 ? { chunksChecked } : {}),
          },
          rehash,
        }
      }
      // A part file of a content whose sender changed it (markChanged) is given up for another.
      const superseded = changed === Buffer.from(j.cid).toString('hex')
      if (!sameContent && j.chunks > 0 && !req.overwrite && !superseded) {
        await j.close()
        throw new DestinationExistsError(
          `${req.dest}.part holds ${j.chunks} verified chunks (${(j.bytes / 2 ** 20).toFixed(1)} MiB) of other content (${cidToString(j.cid)}), an earlier fetch's: fetch that content again to finish it (if it changed since, that fetch says CONTENT_CHANGED and this one then replaces it), pass --force (overwrite: true) to discard it, or choose another path`,
        )
      }
      if (modified && existing.size === req.totalSize) ranges = j.keptRanges(MAX_REHASH_RANGES)
      await j.remove()
      // Another content's verified chunks (an older version of the file, say) are checked against
      // this content's leaves: those at the same offsets that match are kept.
      decision = sameContent
        ? { mode: 'rehash', reason: modified ? 'part-modified' : 'part-replaced' }
        : j.chunks > 0
          ? { mode: 'rehash', reason: 'other-content' }
          : { mode: 'restart', reason: 'other-content' }
    } else {
      await removeJournal(jpath)
      const reason = loaded.status === 'missing' ? 'journal-missing' : 'journal-damaged'
      decision =
        existing.size === req.totalSize
          ? { mode: 'rehash', reason }
          : existing.size > 0
            ? { mode: 'rehash', reason: 'part-size' }
            : { mode: 'restart', reason: 'part-size' }
    }
  }

  handOver()
  const part = await PartFile.open(req.dest, req.totalSize, {
    discard: decision.mode === 'restart',
    direct: req.directWrites,
    partSize: existing?.size ?? 0,
    folder,
  })
  try {
    const init = { cid: req.cid, headerBytes: req.headerBytes, leafCount: req.leafCount }
    let journal: Journal
    if (keepsJournal(req)) {
      await folder.check()
      journal = await Journal.create(jpath, { ...init, part: await part.identity() }, req.journal)
    } else journal = Journal.memory(init, req.journal)
    journal.attach(() => part.datasync())
    return {
      part,
      journal,
      resume: { ...decision, chunksKept: 0, bytesKept: 0 },
      rehash: decision.mode === 'rehash' ? ranges : [],
    }
  } catch (err) {
    await part.close()
    throw err
  }
}

/** Small transfers (`journal.minBytes`) go without a journal file: a resume re-hashes them. */
function keepsJournal(req: StorageRequest): boolean {
  return req.journal.enabled && req.totalSize > req.journal.minBytes
}

/** Where a fetch to `dest` that failed CONTENT_CHANGED names (hex) the content it was fetching. */
function changedPath(dest: string): string {
  return `${dest}.part.changed`
}

/**
 * Notes that the fetch of `cid` to `dest` failed CONTENT_CHANGED (its sender's file changed). What
 * it verified stays: the content id is the same wherever it is served, and another provider of it
 * resumes the part file. But the next fetch of another content here (the ticket published again)
 * discards it, where it would otherwise fail DESTINATION_EXISTS.
 */
export async function markChanged(dest: string, cid: Uint8Array): Promise<void> {
  if ((await entryAt(`${dest}.part`)) === undefined) return
  // Best effort, as the fetch's own files are written: a planted link or special file is refused.
  try {
    const fh = await openOwnFile(
      changedPath(dest),
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
    )
    await fh.writeFile(Buffer.from(cid).toString('hex')).finally(() => fh.close())
  } catch {
    // Without the note the next fetch of another content here asks for --force, as before.
  }
}

/** The content (hex) a CONTENT_CHANGED fetch left `dest`'s part file of, if one did; the note goes. */
async function takeChanged(dest: string): Promise<string | undefined> {
  const fh = await openOwnFile(changedPath(dest), constants.O_RDONLY).catch(() => undefined)
  const named = await fh
    ?.readFile('utf8')
    .finally(() => fh.close())
    .catch(() => undefined)
  if (named !== undefined) await unlinkEntry(changedPath(dest)).catch(() => {})
  return named
}
