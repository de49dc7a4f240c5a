/**
 * The resume journal's file, `<dest>.part.journal`: built whole under a temporary name, opened
 * again, its superblock (the seal of a clean stop, the note of a check after a crash) and its
 * page slots written, removed. What goes into it, and when, is ./journal.ts's write-ahead rule;
 * the bytes are ./journal-format.ts's.
 */
import { constants } from 'node:fs'
import { type FileHandle, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BudgetExceededError, InternalError } from '../errors.ts'
import { syncDir } from '../util/sync-dir.ts'
import { fsError } from './fs-errors.ts'
import {
  BLOCK,
  encodeSuperblock,
  type JournalInit,
  MAX_HEADER_BYTES,
  type PartStamp,
  pageCountOf,
  parseSuperblock,
  readAll,
  readPages,
  type SlotContents,
  slotOffset,
  writeEmptyJournal,
} from './journal-format.ts'
import { entryAt, openOwnFile, removeOwnFile, unlinkEntry } from './safe-open.ts'
import { writeAll } from './write-all.ts'

/** The superblock's fields with the page count the file is laid out for. */
export type JournalLayout = JournalInit & { readonly pageCount: number }

/** Where a journal at `path` is built before it is renamed into place (JournalFile.create). */
export function journalTempPath(path: string): string {
  return `${path}.tmp`
}

export type JournalFileOpen =
  | { readonly status: 'missing' }
  | { readonly status: 'damaged'; readonly detail: string }
  | { readonly status: 'ok'; readonly file: JournalFile; readonly init: JournalInit & { leafCount: number } }

export class JournalFile {
  readonly path: string
  readonly #fh: FileHandle
  /** The superblock's fixed fields (the seal and the check note are kept apart: they change). */
  readonly #layout: JournalLayout
  #sealed: PartStamp | undefined
  #checked: JournalInit['checked']

  private constructor(path: string, fh: FileHandle, layout: JournalLayout) {
    this.path = path
    this.#fh = fh
    this.#layout = layout
    this.#sealed = layout.sealedPart
    this.#checked = layout.checked
  }

  /**
   * Builds an empty journal at `path` (replacing any), atomically: temp file, fsync, rename, fsync
   * folder. The temp file is created anew (O_EXCL): a leftover of a crash is removed first, and
   * an entry planted under its name is refused, never written through.
   */
  static async create(path: string, layout: JournalLayout): Promise<JournalFile> {
    // The same bounds open() checks: a journal it would call damaged is never written.
    const h = layout.headerBytes.length
    if (h === 0 || h > MAX_HEADER_BYTES) throw new InternalError(`descriptor header of ${h} bytes`)
    if (layout.cid.length !== 32) throw new InternalError(`content id of ${layout.cid.length} bytes`)
    const tmp = journalTempPath(path)
    await removeOwnFile(tmp)
    let created = false
    try {
      const fh = await openOwnFile(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL)
      created = true
      try {
        await writeEmptyJournal(fh, layout)
        await fh.datasync()
      } finally {
        await fh.close()
      }
      // rename() replaces the entry at `path` and never follows it.
      await rename(tmp, path)
      await syncDir(dirname(path))
      return new JournalFile(path, await openOwnFile(path, constants.O_RDWR), layout)
    } catch (err) {
      if (created) await unlink(tmp).catch(() => {})
      throw fsError(err, path)
    }
  }

  /**
   * Opens the journal at `path` and reads its superblock. `missing`: no file. `damaged`: the
   * superblock is unreadable, or the file is not the size its page count says, so nothing in it
   * can be trusted. A journal of more than `maxChunks` chunks is BUDGET_EXCEEDED. Anything at
   * `path` but one of haul's own files (./safe-open.ts) fails.
   */
  static async open(path: string, maxChunks: number): Promise<JournalFileOpen> {
    if ((await entryAt(path)) === undefined) return { status: 'missing' }
    const fh = await openOwnFile(path, constants.O_RDWR)
    let handedOut = false
    try {
      const size = (await fh.stat()).size
      const sb = new Uint8Array(BLOCK)
      if (size < BLOCK || (await readAll(fh, sb, 0)) < BLOCK)
        return { status: 'damaged', detail: 'superblock truncated' }
      const init = parseSuperblock(sb)
      if (typeof init === 'string') return { status: 'damaged', detail: init }
      if (init.leafCount > maxChunks) {
        throw new BudgetExceededError(
          `${path} tracks ${init.leafCount} chunks, more than journal.maxChunks (${maxChunks})`,
        )
      }
      const pages = pageCountOf(init.leafCount)
      if (size !== slotOffset(pages, 0)) {
        return { status: 'damaged', detail: `size ${size}, expected ${slotOffset(pages, 0)}` }
      }
      handedOut = true
      return { status: 'ok', file: new JournalFile(path, fh, { ...init, pageCount: pages }), init }
    } catch (err) {
      throw fsError(err, path)
    } finally {
      if (!handedOut) await fh.close().catch(() => {})
    }
  }

  /** Hands `use` each page's newest valid slot, or undefined when both of its slots are damaged. */
  async readPages(use: (page: number, best: SlotContents | undefined) => void): Promise<void> {
    try {
      await readPages(this.#fh, this.#layout.leafCount, this.#layout.pageCount, use)
    } catch (err) {
      throw fsError(err, this.path)
    }
  }

  /** The part file's mtime and ctime a clean stop sealed this journal with; undefined when not sealed. */
  get sealedPart(): PartStamp | undefined {
    return this.#sealed
  }

  /** How far a check after a crash got, and the part file's stamp then. */
  get checked(): JournalInit['checked'] {
    return this.#checked
  }

  /** Seals the journal with the part file's stamp after its last write (a clean stop). */
  async seal(partStamp: PartStamp): Promise<void> {
    this.#sealed = partStamp
    await this.#writeSuperblock()
  }

  /** Notes how far a check after a crash got, against a part file with stamp `part`. */
  async noteChecked(through: number, part: PartStamp): Promise<void> {
    this.#checked = { through, part }
    await this.#writeSuperblock()
  }

  /**
   * Writes each page's next slot (`encode` fills `slot` and returns the generation it wrote),
   * then syncs. The first write of a resumed transfer drops the seal of the stop before it (the
   * part file has been written since). A crash before it leaves a seal its part file no longer
   * matches: the next resume re-hashes the kept chunks, the safe side.
   */
  async writePages(
    pages: readonly number[],
    encode: (page: number, slot: Uint8Array) => number,
  ): Promise<void> {
    const slot = new Uint8Array(BLOCK)
    try {
      if (this.#sealed !== undefined) {
        await writeAll(this.#fh, this.#superblock(undefined), 0, this.path)
        this.#sealed = undefined
      }
      for (const p of pages) {
        const gen = encode(p, slot)
        await writeAll(this.#fh, slot, slotOffset(p, gen % 2), this.path)
      }
      await this.#fh.datasync()
    } catch (err) {
      throw fsError(err, this.path)
    }
  }

  async close(): Promise<void> {
    await this.#fh.close().catch(() => {})
  }

  /** Closes and deletes the file and any temporary of its creation. */
  async remove(): Promise<void> {
    await this.close()
    // unlink() removes an entry and never follows it: whatever stands there now may go.
    for (const p of [this.path, journalTempPath(this.path)]) await unlinkEntry(p)
  }

  async #writeSuperblock(): Promise<void> {
    await writeAll(this.#fh, this.#superblock(), 0, this.path)
    await this.#fh.datasync()
  }

  #superblock(sealedPart = this.#sealed): Uint8Array {
    return encodeSuperblock({ ...this.#layout, sealedPart, checked: this.#checked })
  }
}

/**
 * Deletes a journal and any temporary left by a crash during creation. Missing files are fine;
 * anything there but one of haul's own files is refused (a planted link is the user's to look at).
 */
export async function removeJournal(path: string): Promise<void> {
  for (const p of [path, journalTempPath(path)]) await removeOwnFile(p)
}
