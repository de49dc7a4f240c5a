/**
 * The folder a fetch writes into, resolved once. Between the start of a fetch and its final
 * rename, minutes or hours pass; whoever can write the folder's parent could meanwhile move the
 * folder away and put a symbolic link (to a folder of the user's) in its place. A path resolved
 * again at the end would then rename, create or delete files in that other folder.
 *
 * So the folder is pinned: its real path (realpath, once), its device and inode, and an open
 * handle on it. Renames and opens of the part file go through `/proc/self/fd/<handle>/<name>`
 * on Linux, which names the pinned folder whatever happens to its path since; and before the
 * final rename (and before the files of a resume are opened) the path must still lead to the
 * same device and inode, or the fetch fails with DESTINATION_INVALID, leaving its part file in
 * the original folder. The destination lock pins the folder when the fetch starts and records its
 * identity, so a swap while the descriptor header is being fetched is caught too, and the lock is
 * removed from the folder it was taken in.
 */
import { constants } from 'node:fs'
import { type FileHandle, lstat, open, realpath, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { DestinationInvalidError } from '../errors.ts'
import { fsError } from './fs-errors.ts'
import { O_NOFOLLOW } from './safe-open.ts'

export interface FolderIdentity {
  readonly path: string
  readonly dev: bigint
  readonly ino: bigint
}

/** Folder identities recorded when a fetch took its destination lock, by resolved destination. */
const started = new Map<string, FolderIdentity>()

/** The identity of the folder `dest` is in now (its real path, device, inode). */
export async function identifyFolder(dest: string): Promise<FolderIdentity> {
  const shown = dirname(resolve(dest))
  const path = await realpath(shown).catch((err) => {
    throw fsError(err, shown)
  })
  const s = await stat(path, { bigint: true }).catch((err) => {
    throw fsError(err, shown)
  })
  if (!s.isDirectory()) throw new DestinationInvalidError(`${shown} is not a folder`)
  return { path, dev: s.dev, ino: s.ino }
}

/** Records the folder a fetch to `dest` starts in; later pins of `dest` must find the same one. */
export function rememberFolder(dest: string, id: FolderIdentity): () => void {
  const key = resolve(dest)
  started.set(key, id)
  return () => {
    if (started.get(key) === id) started.delete(key)
  }
}

function changed(shown: string): DestinationInvalidError {
  return new DestinationInvalidError(
    `the folder ${shown} was moved, removed or replaced while haul was writing in it: haul does not follow it, and what it wrote went with the folder (gone, if it was removed); check the folder, then fetch again`,
  )
}

export class DestFolder {
  /** The folder as the user named it (for messages). */
  readonly shown: string
  /** Its real path, resolved when it was pinned. */
  readonly path: string
  readonly #dev: bigint
  readonly #ino: bigint
  #fh: FileHandle | undefined
  /** `/proc/self/fd/<n>` while the handle is open, where the platform has it. */
  #via: string | undefined

  private constructor(shown: string, id: FolderIdentity, fh: FileHandle, via: string | undefined) {
    this.shown = shown
    this.path = id.path
    this.#dev = id.dev
    this.#ino = id.ino
    this.#fh = fh
    this.#via = via
  }

  /** Pins the folder `dest` is in (the one its fetch started in, if a lock recorded it). */
  static async pin(dest: string): Promise<DestFolder> {
    const shown = dirname(resolve(dest))
    const want = started.get(resolve(dest))
    const id = await identifyFolder(dest)
    if (want !== undefined && (want.dev !== id.dev || want.ino !== id.ino)) throw changed(shown)
    let fh: FileHandle
    try {
      fh = await open(id.path, constants.O_RDONLY | constants.O_DIRECTORY | O_NOFOLLOW)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTDIR' || code === 'ELOOP') throw changed(shown)
      throw fsError(err, shown)
    }
    try {
      const s = await fh.stat({ bigint: true })
      if (s.dev !== id.dev || s.ino !== id.ino) throw changed(shown)
      const via = `/proc/self/fd/${fh.fd}`
      const v = await stat(via, { bigint: true }).catch(() => undefined)
      return new DestFolder(shown, id, fh, v?.dev === id.dev && v.ino === id.ino ? via : undefined)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }

  /** What `rememberFolder` records: the real path, device and inode pinned. */
  get identity(): FolderIdentity {
    return { path: this.path, dev: this.#dev, ino: this.#ino }
  }

  /** The real path of `name` in this folder (stable for messages and later use). */
  file(name: string): string {
    return `${this.path}/${name}`
  }

  /** The path to use now for `name` in the pinned folder: through its handle where possible. */
  at(name: string): string {
    return `${this.#via ?? this.path}/${name}`
  }

  /** Fails with DESTINATION_INVALID unless the folder's path still leads to the pinned folder. */
  async check(): Promise<void> {
    const s = await lstat(this.path, { bigint: true }).catch(() => undefined)
    if (s === undefined || !s.isDirectory() || s.dev !== this.#dev || s.ino !== this.#ino) {
      throw changed(this.shown)
    }
  }

  async close(): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    // The descriptor number may be reused once closed: its /proc path must not be.
    this.#via = undefined
    await fh?.close().catch(() => {})
  }
}

/** The file name of `dest` (what `<dest>` is called inside its folder). */
export function nameIn(dest: string): string {
  return basename(resolve(dest))
}
