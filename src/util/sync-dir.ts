import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

const noop = (): void => {}

/**
 * Group commit for folder fsyncs. Every caller needs an fsync of its folder that starts after its
 * own rename; one fsync that starts later covers every rename done by then. So a caller joins the
 * fsync that has not started yet, or queues one behind the fsync that is running. With many
 * transfers committing into one folder, that is about two fsyncs in flight instead of one per
 * commit (open, fsync and close of the folder: three calls on the thread pool each). Each folder
 * has at most one running and one waiting fsync; the entries go when they settle.
 */
export class FolderSyncs {
  readonly #syncOnce: (dir: string) => Promise<void>
  /** The next fsync per folder, not started yet: joining it is enough. */
  readonly #waiting = new Map<string, Promise<void>>()
  /** The fsync running per folder: it may have started before the caller's rename. */
  readonly #running = new Map<string, Promise<void>>()

  constructor(syncOnce: (dir: string) => Promise<void>) {
    this.#syncOnce = syncOnce
  }

  /** Folders with an fsync running or waiting (for tests: the maps do not grow). */
  get size(): number {
    return new Set([...this.#waiting.keys(), ...this.#running.keys()]).size
  }

  sync(dir: string): Promise<void> {
    const waiting = this.#waiting.get(dir)
    if (waiting !== undefined) return waiting
    const before = this.#running.get(dir) ?? Promise.resolve()
    const next: Promise<void> = before
      .then(noop, noop)
      .then(() => {
        this.#waiting.delete(dir)
        this.#running.set(dir, next)
        return this.#syncOnce(dir)
      })
      .finally(() => {
        if (this.#running.get(dir) === next) this.#running.delete(dir)
      })
    this.#waiting.set(dir, next)
    return next
  }
}

async function syncDirOnce(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

const folderSyncs = new FolderSyncs(syncDirOnce)

/**
 * fsync a folder: makes a rename or a new entry in it, done before the call, durable. Rejects with
 * the fs error. Concurrent calls for one folder share fsyncs (see {@link FolderSyncs}).
 */
export function syncDir(dir: string): Promise<void> {
  return folderSyncs.sync(dir)
}

/** {@link syncDir} where a folder that cannot be opened or synced (some filesystems refuse) is not fatal. */
export async function syncDirBestEffort(dir: string): Promise<void> {
  await syncDir(dir).catch(() => {})
}
