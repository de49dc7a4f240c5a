/**
 * Making many new files durable at once. An fsync per file costs a journal commit each (a probe
 * on this machine: fsyncs, 16 at once, added 1.05 s to writing 10,000 files of 16 KiB), where
 * syncfs(2) on their file system costs one (0.31 s after the same writes). Node has no binding for syncfs, so it runs
 * as coreutils' `sync --file-system`; where that is missing or fails, each file is fsync'd.
 */
import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { chmod, lstat, open } from 'node:fs/promises'
import { fsError } from './fs-errors.ts'
import { O_NOFOLLOW } from './safe-open.ts'

/** Files fsync'd at once when syncfs is not available. */
const FSYNC_CONCURRENCY = 16

/**
 * Returns once `files` (all on the file system of `dir`) are on stable storage, saying how. `dir`
 * is a real path: another process runs the syncfs.
 */
export async function syncFiles(
  dir: string,
  files: Iterable<string> & { readonly length: number },
): Promise<'syncfs' | 'fsync' | 'none'> {
  if (files.length === 0) return 'none'
  if (files.length > FSYNC_CONCURRENCY && (await syncFileSystem(dir))) return 'syncfs'
  // The paths are taken as they are synced: a million of them need not be held at once.
  let batch: string[] = []
  for (const path of files) {
    batch.push(path)
    if (batch.length < FSYNC_CONCURRENCY) continue
    await Promise.all(batch.map(fsyncFile))
    batch = []
  }
  await Promise.all(batch.map(fsyncFile))
  return 'fsync'
}

function syncFileSystem(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('sync', ['--file-system', dir], { timeout: 120_000 }, (err) => resolve(err === null))
  })
}

async function fsyncFile(path: string): Promise<void> {
  const flags = constants.O_RDONLY | O_NOFOLLOW
  const fh = await open(path, flags).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EACCES') throw fsError(err, path)
    // A file its owner may not read (a collection's file of mode 000, 100 or 200, which this
    // process made): readable for the moment of the open, its mode put back at once.
    const s = await lstat(path).catch(() => undefined)
    if (s === undefined || !s.isFile()) throw fsError(err, path)
    await chmod(path, (s.mode & 0o7777) | 0o400).catch(() => {
      throw fsError(err, path)
    })
    try {
      return await open(path, flags)
    } catch (again) {
      throw fsError(again, path)
    } finally {
      await chmod(path, s.mode & 0o7777).catch(() => {})
    }
  })
  try {
    await fh.datasync()
  } finally {
    await fh.close()
  }
}
