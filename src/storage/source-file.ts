import { type FileHandle, open, stat } from 'node:fs/promises'
import { ContentChangedError } from '../errors.ts'
import { fsError } from './fs-errors.ts'

/** What a published file looked like when it was indexed; serving refuses once it differs. */
export interface FileFingerprint {
  readonly size: number
  readonly mtimeMs: number
}

export async function fingerprint(path: string): Promise<FileFingerprint> {
  const s = await stat(path).catch((err) => {
    throw fsError(err, path)
  })
  return { size: s.size, mtimeMs: s.mtimeMs }
}

/**
 * The serving side's view of a published file: ranges are read straight from
 * the original (no copy into a store). A changed size or mtime is caught here
 * cheaply; a change that keeps both is caught by hashing each chunk before it
 * is sent (see the server).
 */
export class SourceFile {
  readonly path: string
  readonly expected: FileFingerprint
  #fh: FileHandle

  private constructor(path: string, fh: FileHandle, expected: FileFingerprint) {
    this.path = path
    this.#fh = fh
    this.expected = expected
  }

  static async open(path: string, expected: FileFingerprint): Promise<SourceFile> {
    const fh = await open(path, 'r').catch((err) => {
      throw fsError(err, path)
    })
    const src = new SourceFile(path, fh, expected)
    try {
      await src.checkUnchanged()
    } catch (err) {
      await fh.close()
      throw err
    }
    return src
  }

  /**
   * One fstat: the server calls it once per request (a request names up to
   * `maxChunksPerRequest` chunks), so even a file that changed a moment after it
   * was published is refused from the first request on.
   */
  async checkUnchanged(): Promise<void> {
    const s = await this.#fh.stat()
    if (s.size !== this.expected.size || s.mtimeMs !== this.expected.mtimeMs) {
      throw new ContentChangedError(
        `${this.path} changed since it was indexed (size ${this.expected.size}→${s.size}): publish it again to get a new ticket`,
      )
    }
  }

  /** Fills `into[0, length)` from `offset`; a short read means the file shrank. */
  async read(offset: number, length: number, into: Uint8Array): Promise<void> {
    let done = 0
    while (done < length) {
      const { bytesRead } = await this.#fh.read(into, done, length - done, offset + done)
      if (bytesRead === 0) {
        throw new ContentChangedError(`${this.path} is shorter than when it was indexed: publish it again`)
      }
      done += bytesRead
    }
  }

  async close(): Promise<void> {
    await this.#fh.close().catch(() => {})
  }
}
