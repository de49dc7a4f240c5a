import { constants } from 'node:fs'
import { type FileHandle, open, rename, stat, statfs, unlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { DestinationInvalidError, NoSpaceError } from '../errors.ts'
import { fsError } from './fs-errors.ts'
import type { PartIdentity } from './journal.ts'

/**
 * The receiving side's sink: verified chunks are written at their offsets into
 * `<dest>.part`; `commit()` fsyncs and atomically renames it to `<dest>`, then
 * fsyncs the folder so the rename itself survives a crash. Nothing unverified
 * is ever handed to this class: the caller checks each chunk first.
 */
export class PartFile {
  readonly dest: string
  readonly partPath: string
  readonly totalSize: number
  #fh: FileHandle | undefined

  private constructor(dest: string, fh: FileHandle, totalSize: number) {
    this.dest = dest
    this.partPath = `${dest}.part`
    this.totalSize = totalSize
    this.#fh = fh
  }

  /** What is at `<dest>.part` now, without opening it: undefined when nothing is, or it is not a file. */
  static async inspect(destPath: string): Promise<(PartIdentity & { size: number }) | undefined> {
    const s = await stat(`${resolve(destPath)}.part`, { bigint: true }).catch(() => undefined)
    if (s === undefined || !s.isFile()) return undefined
    return { dev: s.dev, ino: s.ino, size: Number(s.size) }
  }

  /**
   * Checks the destination before any byte is fetched, so bad paths and full
   * disks fail fast. An existing `<dest>.part` is kept (resume) unless
   * `discard` is set, which empties it first.
   */
  static async open(
    destPath: string,
    totalSize: number,
    opts: { discard?: boolean } = {},
  ): Promise<PartFile> {
    const dest = resolve(destPath)
    const dir = dirname(dest)
    const dirStat = await stat(dir).catch((err) => {
      throw fsError(err, dir)
    })
    if (!dirStat.isDirectory()) throw new DestinationInvalidError(`${dir} is not a folder`)
    const existing = await stat(dest).catch(() => undefined)
    if (existing?.isDirectory()) {
      throw new DestinationInvalidError(`${dest} is a directory: give a file path, e.g. ${dest}/<name>`)
    }
    const fs = await statfs(dir).catch(() => undefined)
    if (fs !== undefined) {
      const free = Number(fs.bavail) * Number(fs.bsize)
      const partSize = (await stat(`${dest}.part`).catch(() => undefined))?.size ?? 0
      if (free + partSize < totalSize) {
        throw new NoSpaceError(
          `${dir} has ${free} bytes free but the file needs ${totalSize}: free space or choose another destination`,
        )
      }
    }
    const partPath = `${dest}.part`
    const fh = await open(partPath, constants.O_RDWR | constants.O_CREAT, 0o644).catch((err) => {
      throw fsError(err, partPath)
    })
    try {
      if (opts.discard) await fh.truncate(0)
      await fh.truncate(totalSize)
    } catch (err) {
      await fh.close()
      throw fsError(err, partPath)
    }
    return new PartFile(dest, fh, totalSize)
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const fh = this.#handle()
    let done = 0
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done)
        done += bytesWritten
      }
    } catch (err) {
      throw fsError(err, this.partPath)
    }
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

  /** fdatasync: every byte written so far is on stable storage (the journal's write-ahead step). */
  async datasync(): Promise<void> {
    try {
      await this.#handle().datasync()
    } catch (err) {
      throw fsError(err, this.partPath)
    }
  }

  /** Device and inode of the open part file: the journal remembers which file its bits describe. */
  async identity(): Promise<PartIdentity> {
    const s = await this.#handle().stat({ bigint: true })
    return { dev: s.dev, ino: s.ino }
  }

  /** fsync, rename over `<dest>`, fsync the folder. */
  async commit(): Promise<void> {
    const fh = this.#handle()
    try {
      await fh.sync()
      await fh.close()
      this.#fh = undefined
      await rename(this.partPath, this.dest)
      const dir = await open(dirname(this.dest), constants.O_RDONLY)
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
    } catch (err) {
      throw fsError(err, this.dest)
    }
  }

  /** Closes the part file; `remove` deletes it (a cancelled transfer with nothing worth resuming). */
  async close(opts: { remove?: boolean } = {}): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close().catch(() => {})
    if (opts.remove) await unlink(this.partPath).catch(() => {})
  }

  #handle(): FileHandle {
    if (this.#fh === undefined) throw new DestinationInvalidError(`${this.partPath} is already closed`)
    return this.#fh
  }
}
