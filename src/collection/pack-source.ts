/**
 * A collection's pack as the indexer and the server read it: every file's bytes one after
 * another (manifest order), read straight from the files (no copy into a store). A read checks
 * each file it touches against its fingerprint (one fstat), so a file replaced, removed or
 * resized since the walk is refused at the first chunk that holds it, and one touched since
 * has the pack's chunks hashed again (touchedSince in src/storage/source-file.ts). Its files are opened on demand in an OpenFiles
 * (src/storage/open-files.ts): the engine's, shared with everything it serves, or one of
 * MAX_OPEN_FILES of its own: ten thousand small files are read one chunk's worth at a time, and
 * closed again. Opens, fstats and small reads are synchronous (see SYNC_READ_BYTES).
 */
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs'
import { ContentChangedError, ContentNotFoundError } from '../errors.ts'
import type { ContentSource } from '../serve/registry.ts'
import { sourceError } from '../storage/fs-errors.ts'
import { OpenFiles, type OpenHandle } from '../storage/open-files.ts'
import {
  ChunkVouch,
  type FileFingerprint,
  READ_NONBLOCK,
  refuseNotRegular,
  reopenError,
  sameFile,
  stateOf,
  touchedSince,
} from '../storage/source-file.ts'
import type { ManifestEntry } from './manifest.ts'
import type { WalkedFile } from './walk.ts'

/** Open file handles a pack without an engine's OpenFiles keeps (indexing, checking a folder). */
export const MAX_OPEN_FILES = 64

/** One of the pack's files, open. */
class PackFd implements OpenHandle {
  readonly fd: number
  constructor(fd: number) {
    this.fd = fd
  }
  close(): void {
    closeSync(this.fd)
  }
}

/**
 * Pieces up to this size are read synchronously: a small file's read is a few microseconds from
 * the page cache, while a trip through libuv's thread pool costs more than the read itself (a
 * chunk of 16 KiB files is 64 opens, fstats and reads). Larger pieces are read on the pool.
 */
const SYNC_READ_BYTES = 256 * 1024

interface PackFile {
  readonly abs: string
  readonly offset: number
  /** As walked, or as last touched (see touchedSince). */
  fingerprint: FileFingerprint
}

export class PackSource implements ContentSource {
  /** The folder (or common folder) sent: what error messages name. */
  readonly path: string
  readonly size: number
  /** Files with at least one byte, in pack order (empty files have no place to read). */
  readonly #files: PackFile[]
  readonly #openFiles: OpenFiles
  #vouch: ChunkVouch
  /** The pack's chunk count, once indexed (0 before). */
  #chunks = 0
  #closed = false

  /**
   * `entries` in manifest order (their offsets place each file); `files` by relative path;
   * `openFiles` where the handles are kept.
   */
  constructor(
    path: string,
    entries: readonly ManifestEntry[],
    files: ReadonlyMap<string, WalkedFile>,
    openFiles: OpenFiles = new OpenFiles(MAX_OPEN_FILES),
  ) {
    this.path = path
    this.#openFiles = openFiles
    this.#files = []
    let size = 0
    for (const e of entries) {
      if (e.kind !== 'file') continue
      const f = files.get(e.path)
      if (f === undefined) throw new ContentChangedError(`${e.path} is not among the files walked`)
      if (e.size > 0) this.#files.push({ abs: f.abs, offset: e.offset, fingerprint: f.fingerprint })
      size = e.offset + e.size
    }
    this.size = size
    this.#vouch = new ChunkVouch(
      this.#files.map((f) => f.fingerprint),
      0,
    )
  }

  /** The pack's chunk count, once indexed: racy files are then tracked chunk by chunk. */
  indexed(chunks: number): void {
    this.#chunks = chunks
    this.#vouch = new ChunkVouch(
      this.#files.map((f) => f.fingerprint),
      chunks,
    )
  }

  get needsChunkHash(): boolean {
    return this.#vouch.needsChunkHash
  }

  chunkHashed(index: number, readStartNs: bigint): void {
    this.#vouch.chunkHashed(index, readStartNs)
  }

  /** Reads check the files they touch (see the module comment). */
  async checkUnchanged(): Promise<void> {}

  async read(offset: number, length: number, into: Uint8Array): Promise<void> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new ContentChangedError(`read past the end of the collection ${this.path}`)
    }
    let i = this.#fileAt(offset)
    let done = 0
    while (done < length) {
      const f = this.#files[i]!
      const at = offset + done - f.offset
      const n = Math.min(length - done, f.fingerprint.size - at)
      try {
        await this.#openFiles.use(
          this,
          i,
          () => this.#open(i),
          async (file) => {
            const now = fstatSync(file.fd, { bigint: true })
            refuseNotRegular(now, f.abs)
            const state = stateOf(now)
            if (!sameFile(state, f.fingerprint)) {
              // Touched, not necessarily changed: the whole pack's chunks are hashed again.
              f.fingerprint = touchedSince(f.abs, f.fingerprint, state, now.nlink)
              this.#vouch = new ChunkVouch(
                this.#files.map((g) => g.fingerprint),
                this.#chunks,
                true,
              )
            }
            for (let got = 0; got < n; ) {
              const want = n - got
              const read =
                want <= SYNC_READ_BYTES
                  ? readSync(file.fd, into, done + got, want, at + got)
                  : await readAsync(file.fd, into, done + got, want, at + got)
              if (read === 0) throw changed(f.abs)
              got += read
            }
          },
        )
      } catch (err) {
        throw sourceError(err, f.abs)
      }
      done += n
      i++
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#openFiles.forget(this)
  }

  /** The index of the file holding pack byte `offset` (files are sorted by offset). */
  #fileAt(offset: number): number {
    let lo = 0
    let hi = this.#files.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.#files[mid]!.offset <= offset) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  #open(i: number): PackFd {
    const abs = this.#files[i]!.abs
    // Closed by an unpublish while a request read it: that content is no longer published.
    if (this.#closed) throw new ContentNotFoundError(`${this.path} is no longer published`)
    try {
      // Non-blocking: a file replaced by a FIFO would hold the event loop in open(2) for good
      // (READ_NONBLOCK); the fstat before each read refuses it.
      return new PackFd(openSync(abs, READ_NONBLOCK))
    } catch (err) {
      throw reopenError(err, abs)
    }
  }
}

function readAsync(
  fd: number,
  into: Uint8Array,
  at: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, into, at, length, position, (err, n) => (err === null ? resolve(n) : reject(err))),
  )
}

function changed(abs: string): ContentChangedError {
  return new ContentChangedError(
    `${abs} changed since the folder was published: publish it again to get a new ticket`,
  )
}
