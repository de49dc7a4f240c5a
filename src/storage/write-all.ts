import type { FileHandle } from 'node:fs/promises'
import { NoSpaceError } from '../errors.ts'

/**
 * Writes all of `buf` at `at`. A write that stops short (the disk filled up part-way) is
 * continued: the next one fails with the reason (ENOSPC, EDQUOT: the caller's fsError makes it
 * NO_SPACE), which a short count alone does not say; one that takes no byte at all is NO_SPACE
 * naming `what`, rather than a loop that never ends.
 */
export async function writeAll(fh: FileHandle, buf: Uint8Array, at: number, what: string): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done)
    if (bytesWritten === 0) {
      throw new NoSpaceError(
        `no space left writing ${what} (the disk took no more bytes): free some space and run the same command again`,
      )
    }
    done += bytesWritten
  }
}
