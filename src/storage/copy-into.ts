/**
 * Copies a regular file's bytes into another file at an offset, the way a fetch over an earlier
 * copy reuses what is already on disk (src/collection/seed-pack.ts, src/fetch/seed-part.ts):
 * nothing copied is trusted before the fetch re-hashes it, so any byte may be missing, and a file
 * that cannot be read is simply not copied.
 */
import { constants } from 'node:fs'
import { type FileHandle, lstat, open } from 'node:fs/promises'
import { O_NOFOLLOW } from './safe-open.ts'

/** Bytes copied per read and write. */
export const COPY_BLOCK = 1024 * 1024

/**
 * Copies the regular file at `path`, if it has `size` bytes, to `offset` of `out`, telling
 * `onCopied` the bytes copied so far after each block; returns the bytes copied. The file is
 * opened without following a link and checked again once open; a read that fails stops the copy
 * there (the rest is fetched). A write that fails throws.
 */
export async function copyInto(
  path: string,
  size: number,
  out: FileHandle,
  offset: number,
  block: Uint8Array,
  onCopied: (bytes: number) => void = () => {},
): Promise<number> {
  const s = await lstat(path).catch(() => undefined)
  if (s === undefined || !s.isFile() || s.size !== size) return 0
  const fh = await open(path, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined)
  if (fh === undefined) return 0
  let done = 0
  try {
    const opened = await fh.stat()
    if (!opened.isFile() || opened.size !== size) return 0
    while (done < size) {
      const bytesRead = await fh
        .read(block, 0, Math.min(block.length, size - done), done)
        .then((r) => r.bytesRead)
        .catch(() => 0)
      if (bytesRead === 0) break
      await out.write(block, 0, bytesRead, offset + done)
      done += bytesRead
      onCopied(done)
    }
    return done
  } finally {
    await fh.close()
  }
}
