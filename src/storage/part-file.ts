import { type BigIntStats, constants } from 'node:fs'
import { type FileHandle, link, open, rename, unlink } from 'node:fs/promises'
import { resolve } from 'node:path'
import { DestinationExistsError, DestinationInvalidError, NoSpaceError } from '../errors.ts'
import { syncDir } from '../util/sync-dir.ts'
import { isAllZero } from '../util/zeros.ts'
import { DestFolder, nameIn } from './dest-folder.ts'
import { DIRECT_SLOT_BYTES, type DirectWriteSlots, directPrefix, O_DIRECT } from './direct-writes.ts'
import { freeBytes } from './free-space.ts'
import { fsError } from './fs-errors.ts'
import type { PartIdentity, PartStamp } from './journal-format.ts'
import {
  assertNotSpecial,
  assertOwnFile,
  assertReplaceable,
  entryAt,
  entryAtExact,
  O_NOFOLLOW,
  openOwnFile,
} from './safe-open.ts'

/**
 * The receiving side's sink: verified chunks are written at their offsets into
 * `<dest>.part`; `commit()` fsyncs and atomically renames it to `<dest>`, then
 * fsyncs the folder so the rename itself survives a crash. Nothing unverified
 * is ever handed to this class: the caller checks each chunk first.
 *
 * The part file is one of haul's own files (./safe-open.ts: a regular file
 * with one name, this user's, never opened through a link), in a pinned folder
 * (./dest-folder.ts): the final rename happens in the folder the fetch started
 * in, or not at all.
 *
 * With staging slots (src/storage/direct-writes.ts) the block-aligned part of
 * each write goes through a second, O_DIRECT handle; the rest (the tail of the
 * last chunk, content-defined chunks at odd offsets) through the buffered one.
 * The two never share a block. A filesystem that refuses direct writes
 * (tmpfs, some network filesystems) silently gets buffered writes only.
 *
 * A chunk of zeros is not written where the part file already reads as zeros: that range stays
 * a hole, as `rsync --sparse` leaves it, so a sparse file arrives sparse, using no disk for its
 * holes and no time writing them. The file's length is set when it is opened. In a part file
 * that was empty when opened, every range holds zeros or (after a failed write) part of its own
 * verified chunk, so a zero chunk is skipped without looking; in one kept from an earlier run
 * (resume) the range is read first, and written unless it is all zeros.
 */
export class PartFile {
  readonly dest: string
  readonly partPath: string
  readonly totalSize: number
  readonly #folder: DestFolder
  readonly #id: PartIdentity
  #fh: FileHandle | undefined
  /** The O_DIRECT handle; kept open (for close) after a refused write turns direct writes off. */
  #directFh: FileHandle | undefined
  #slots: DirectWriteSlots | undefined
  /** The file was empty when opened: any range never written reads as zeros. */
  readonly #startedEmpty: boolean
  /** Zero chunks left as holes instead of written. */
  #holes = 0
  /** Where a resumed part file's range is read back to see whether it holds zeros (made once). */
  #zeroCheck: Uint8Array | undefined

  private constructor(
    dest: string,
    folder: DestFolder,
    fh: FileHandle,
    id: PartIdentity,
    totalSize: number,
    startedEmpty: boolean,
    direct?: Direct,
  ) {
    this.dest = dest
    this.partPath = `${dest}.part`
    this.totalSize = totalSize
    this.#folder = folder
    this.#id = id
    this.#fh = fh
    this.#startedEmpty = startedEmpty
    this.#directFh = direct?.fh
    this.#slots = direct?.slots
  }

  /** Chunks of zeros left as holes (not written) so far. */
  get holes(): number {
    return this.#holes
  }

  /** True while aligned writes go through the O_DIRECT handle. */
  get writesDirect(): boolean {
    return this.#slots !== undefined && this.#fh !== undefined
  }

  /**
   * What is at `<dest>.part` now, without opening it: undefined when nothing is. Anything there
   * but one of haul's own files (a link, a device, another user's file) fails DESTINATION_INVALID
   * or PERMISSION_DENIED: it is never resumed, emptied or replaced.
   */
  static async inspect(
    destPath: string,
    folder?: DestFolder,
  ): Promise<(PartIdentity & PartStamp & { size: number }) | undefined> {
    const shown = `${resolve(destPath)}.part`
    const s = await entryAtExact(folder?.at(`${nameIn(destPath)}.part`) ?? shown, shown)
    if (s === undefined) return undefined
    assertOwnFile(s, shown)
    return { dev: s.dev, ino: s.ino, size: Number(s.size), mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs }
  }

  /**
   * Checks the destination before any byte is fetched, so bad paths and full
   * disks fail fast. An existing `<dest>.part` is kept (resume) unless
   * `discard` is set, which empties it first. `folder` (pinned by the caller,
   * else here) is this part file's from now on: it closes with it.
   */
  static async open(
    destPath: string,
    totalSize: number,
    opts: {
      discard?: boolean
      direct?: DirectWriteSlots | undefined
      /** Size of `<dest>.part` now, where the caller has just looked (saves a stat). */
      partSize?: number
      folder?: DestFolder
    } = {},
  ): Promise<PartFile> {
    const dest = resolve(destPath)
    const folder = opts.folder ?? (await DestFolder.pin(dest))
    try {
      return await PartFile.#open(dest, folder, totalSize, opts)
    } catch (err) {
      await folder.close()
      throw err
    }
  }

  static async #open(
    dest: string,
    folder: DestFolder,
    totalSize: number,
    opts: { discard?: boolean; direct?: DirectWriteSlots | undefined; partSize?: number },
  ): Promise<PartFile> {
    const name = nameIn(dest)
    const existing = await entryAt(folder.at(name), dest)
    if (existing !== undefined) assertNotSpecial(existing, dest)
    const free = await freeBytes(folder.path)
    const partPath = `${dest}.part`
    const at = folder.at(`${name}.part`)
    if (free !== undefined) {
      const partSize = opts.partSize ?? (await entryAt(at, partPath))?.size ?? 0
      if (free + partSize < totalSize) {
        throw new NoSpaceError(
          `${folder.shown} has ${free} bytes free but the file needs ${totalSize}: free space or choose another destination`,
        )
      }
    }
    await folder.check()
    const fh = await openOwnFile(at, constants.O_RDWR | constants.O_CREAT, partPath)
    let id: PartIdentity
    let startedEmpty: boolean
    try {
      const s = await fh.stat({ bigint: true })
      id = { dev: s.dev, ino: s.ino }
      startedEmpty = opts.discard === true || s.size === 0n
      if (opts.discard) await fh.truncate(0)
      // Only when the length differs: truncating to the same length still sets the file's mtime,
      // which a resume reads as the part file written after its journal (src/fetch/resume.ts).
      if (opts.discard === true || s.size !== BigInt(totalSize)) await fh.truncate(totalSize)
    } catch (err) {
      await fh.close()
      throw fsError(err, partPath)
    }
    const direct = opts.direct === undefined ? undefined : await openDirect(at, id, opts.direct)
    return new PartFile(dest, folder, fh, id, totalSize, startedEmpty, direct)
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const fh = this.#handle()
    if (isAllZero(bytes) && (this.#startedEmpty || (await this.#readsZero(offset, bytes.length)))) {
      this.#holes++
      return
    }
    let done = this.writesDirect
      ? await this.#writeDirect(offset, bytes, directPrefix(offset, bytes.length))
      : 0
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done)
        done += bytesWritten
      }
    } catch (err) {
      throw fsError(err, this.partPath)
    }
  }

  /** True when the part file holds only zeros in [offset, offset + length). */
  async #readsZero(offset: number, length: number): Promise<boolean> {
    this.#zeroCheck ??= new Uint8Array(64 * 1024)
    const piece = this.#zeroCheck
    for (let at = 0; at < length; at += piece.length) {
      const view = piece.subarray(0, Math.min(piece.length, length - at))
      await this.read(offset + at, view)
      if (!isAllZero(view)) return false
    }
    return true
  }

  /** Writes bytes[0, length) directly, one staging slot at a time; returns how many went out that way. */
  async #writeDirect(offset: number, bytes: Uint8Array, length: number): Promise<number> {
    let done = 0
    while (done < length) {
      const slots = this.#slots
      const fh = this.#directFh
      if (slots === undefined || fh === undefined) break
      const n = Math.min(DIRECT_SLOT_BYTES, length - done)
      const slot = await slots.acquire()
      try {
        slot.set(bytes.subarray(done, done + n))
        const { bytesWritten } = await fh.write(slot, 0, n, offset + done)
        done += bytesWritten
        // Short (a full disk, say): the buffered write finishes it and reports the error.
        if (bytesWritten < n) break
      } catch (err) {
        // EINVAL: this filesystem or device refuses the alignment; the buffered handle takes over.
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw fsError(err, this.partPath)
        this.#slots = undefined
      } finally {
        slots.release(slot)
      }
    }
    return done
  }

  /** Fills `into` from `offset`; bytes past the end of the file read as zeros. */
  async read(offset: number, into: Uint8Array): Promise<void> {
    const fh = this.#handle()
    let done = 0
    try {
      while (done < into.length) {
        const { bytesRead } = await fh.read(into, done, into.length - done, offset + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
    } catch (err) {
      throw fsError(err, this.partPath)
    }
    into.fill(0, done)
  }

  /**
   * fdatasync (every byte written so far is on stable storage: the journal's write-ahead step),
   * then checks the folder is still the one pinned and `<dest>.part` still the file written
   * here: the journal syncs every few seconds while chunks arrive, so a destination folder moved
   * or removed, or a part file removed or replaced, mid-transfer fails the fetch then, not once
   * every chunk has been fetched into a file no name leads to.
   */
  async datasync(): Promise<void> {
    try {
      await this.#handle().datasync()
    } catch (err) {
      throw fsError(err, this.partPath)
    }
    await this.#folder.check()
    await this.#assertStillPart()
  }

  /** DESTINATION_INVALID unless `<dest>.part` (in the pinned folder) is the file written here. */
  async #assertStillPart(): Promise<void> {
    const part = await entryAtExact(this.#folder.at(`${nameIn(this.dest)}.part`), this.partPath)
    if (part === undefined) {
      throw new DestinationInvalidError(
        `${this.partPath} was removed by something else during the fetch: run the same command again (what it held is fetched again)`,
      )
    }
    if (part.dev !== this.#id.dev || part.ino !== this.#id.ino) {
      throw new DestinationInvalidError(
        `${this.partPath} was replaced by another file during the fetch: haul does not rename a file it did not write; fetch again`,
      )
    }
  }

  /** The open part file's mtime and ctime (ns), for the journal's seal at a clean stop. */
  async stamp(): Promise<PartStamp> {
    try {
      const s = await this.#handle().stat({ bigint: true })
      return { mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs }
    } catch (err) {
      throw fsError(err, this.partPath)
    }
  }

  /**
   * The stamp a clean stop seals the journal with, or undefined when the part file is not the
   * size haul keeps it at: something else truncated or extended it during the run, so what the
   * journal says of its bytes cannot be trusted, and the next run checks them again.
   */
  async sealStamp(): Promise<PartStamp | undefined> {
    let s: BigIntStats
    try {
      // Closed already (a commit that failed once the handle was closed): nothing to seal with.
      s = await this.#handle().stat({ bigint: true })
    } catch {
      return undefined
    }
    if (s.size !== BigInt(this.totalSize)) return undefined
    return { mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs }
  }

  /** Device and inode of the open part file: the journal remembers which file its bits describe. */
  async identity(): Promise<PartIdentity> {
    this.#handle()
    return this.#id
  }

  /**
   * fsync, rename over `<dest>`, fsync the folder (`sync: false`: only the rename, for a file
   * whose caller deletes it soon after; see FetchJobDeps.scratch). The rename happens in the pinned folder, only
   * while its path still leads there, only while `<dest>.part` is still the file written here,
   * and only over what may be replaced (./safe-open.ts assertReplaceable). Without `replace`, over
   * nothing: a file that appeared at `<dest>` during the fetch is DESTINATION_EXISTS, and the part
   * file stays for a run with overwrite to finish.
   */
  async commit(opts: { sync?: boolean; replace?: boolean } = {}): Promise<void> {
    const fh = this.#handle()
    const folder = this.#folder
    const name = nameIn(this.dest)
    const sync = opts.sync !== false
    try {
      // Haul keeps it at the file's size from open to commit: another size is another writer's.
      const size = (await fh.stat()).size
      if (size !== this.totalSize) {
        throw new DestinationInvalidError(
          `${this.partPath} is ${size} bytes, not the ${this.totalSize} haul keeps it at: something else changed it during the fetch. Run the same command again: what it holds is checked against the content id first`,
        )
      }
      if (sync) await fh.sync()
      await this.#closeDirect()
      await fh.close()
      this.#fh = undefined
      await folder.check()
      await this.#assertStillPart()
      if (opts.replace === true) {
        await assertReplaceable(folder.at(name), this.dest)
        await rename(folder.at(`${name}.part`), folder.at(name))
      } else await this.#placeNew(folder, name)
      if (sync) await syncDir(folder.path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new DestinationInvalidError(
          `${this.partPath} was removed by something else before it could become ${this.dest}: fetch again`,
          { cause: err },
        )
      }
      throw fsError(err, this.dest)
    } finally {
      await folder.close()
    }
  }

  /**
   * `<dest>.part` becomes `<dest>` only if nothing is at `<dest>`: link() never replaces a name, so
   * the check and the move are one step. Where the filesystem has no hard links, a check, then
   * rename (a file appearing in between is replaced: the one window left).
   */
  async #placeNew(folder: DestFolder, name: string): Promise<void> {
    const part = folder.at(`${name}.part`)
    const dest = folder.at(name)
    try {
      await link(part, dest)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') throw this.#appeared()
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err
      if ((await entryAt(dest, this.dest)) !== undefined) throw this.#appeared()
      await rename(part, dest)
      return
    }
    await unlink(part)
  }

  #appeared(): DestinationExistsError {
    return new DestinationExistsError(
      `${this.dest} appeared during the fetch and holds other data: haul did not replace it. The fetched file is complete in ${this.partPath}: run the same get with --force (overwrite: true) to replace ${this.dest} with it, or move ${this.dest} away and run the same get again`,
    )
  }

  /** Closes the part file; `remove` deletes it (a cancelled transfer with nothing worth resuming). */
  async close(opts: { remove?: boolean } = {}): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await this.#closeDirect().catch(() => {})
    await fh?.close().catch(() => {})
    if (opts.remove) await unlink(this.#folder.at(`${nameIn(this.dest)}.part`)).catch(() => {})
    await this.#folder.close()
  }

  async #closeDirect(): Promise<void> {
    const fh = this.#directFh
    this.#directFh = undefined
    this.#slots = undefined
    await fh?.close()
  }

  #handle(): FileHandle {
    if (this.#fh === undefined) throw new DestinationInvalidError(`${this.partPath} is already closed`)
    return this.#fh
  }
}

interface Direct {
  readonly fh: FileHandle
  readonly slots: DirectWriteSlots
}

/** The part file's O_DIRECT handle, or undefined where the platform or filesystem has none. */
async function openDirect(
  at: string,
  id: PartIdentity,
  slots: DirectWriteSlots,
): Promise<Direct | undefined> {
  if (O_DIRECT === undefined) return undefined
  const fh = await open(at, constants.O_WRONLY | O_DIRECT | O_NOFOLLOW).catch(() => undefined)
  if (fh === undefined) return undefined
  // The same file as the buffered handle, or none: a swap in between must not get half the writes.
  const s = await fh.stat({ bigint: true }).catch(() => undefined)
  if (s?.dev === id.dev && s.ino === id.ino) return { fh, slots }
  await fh.close().catch(() => {})
  return undefined
}
