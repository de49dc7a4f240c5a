import { type BigIntStats, constants, type Stats } from 'node:fs'
import { type FileHandle, open, stat, statfs } from 'node:fs/promises'
import { ContentChangedError, ContentNotFoundError, type HaulError, SourceInvalidError } from '../errors.ts'
import { DirectReads, mostlyHoles } from './direct-reads.ts'
import { sourceError } from './fs-errors.ts'
import { OpenFiles, type OpenHandle } from './open-files.ts'
import { kindOf } from './safe-open.ts'

/**
 * How a published or indexed file is opened for reading, the first time and every reopen. Its
 * path may name a named pipe (FIFO) by then (the file removed and a FIFO made under its name):
 * open(2) of a FIFO for reading waits for a writer, forever, holding the thread that called it
 * (the event loop for openSync, one of libuv's four pool threads otherwise) where no signal
 * frees it. O_NONBLOCK makes that open return at once, and the fstat after it refuses anything but
 * a regular file (refuseNotRegular). Reads of a regular file never wait for data, so O_NONBLOCK
 * changes nothing for them.
 */
export const READ_NONBLOCK = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)

/**
 * CONTENT_CHANGED when the file just opened at `path` (its fstat `s`) is not a regular file: what
 * was published there was removed and something else (a FIFO, a device, a socket) took its name.
 */
export function refuseNotRegular(s: Stats | BigIntStats, path: string): void {
  if (s.isFile()) return
  throw new ContentChangedError(
    `${path} is now ${kindOf(s)}, no longer the file that was indexed: publish it again to get a new ticket`,
  )
}

/**
 * What a published file looked like when it was indexed; serving refuses another file or size,
 * and hashes each chunk again of a file touched since (touchedSince).
 * The kernel sets ctime on every change to a file's data or metadata (utimes included) and
 * user space cannot set it back, so an unchanged (device, inode, size, mtime, ctime) means
 * the bytes were not written through the filesystem since: the same test rsync, make and
 * git's index rely on. Times are kept in nanoseconds (bigint stat).
 */
export interface FileState {
  readonly dev: bigint
  readonly ino: bigint
  readonly size: number
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint
}
export interface FileFingerprint extends FileState {
  /** Wall clock (ns since the epoch) just before the stat was taken. */
  readonly takenNs: bigint
}

/**
 * A file changed less than this before its fingerprint was taken is "racily clean" (git's
 * term): a second write within the same timestamp tick would leave mtime and ctime as they
 * were. Ticks are a few ms on ext4/xfs/btrfs; 2 s covers FAT's and the coarsest network
 * filesystems'.
 */
export const RACY_WINDOW_NS = 2_000_000_000n

export async function fingerprint(path: string): Promise<FileFingerprint> {
  const takenNs = wallClockNs()
  const s = await stat(path, { bigint: true }).catch((err) => {
    throw sourceError(err, path)
  })
  if (s.isDirectory()) throw new SourceInvalidError(`${path} is a folder: give a file`)
  if (!s.isFile()) throw new SourceInvalidError(`${path} is not a regular file: give a file`)
  await refuseKernelFiles(path, 'file')
  return { ...stateOf(s), takenNs }
}

/**
 * The file at `path` as it is now, to compare with its fingerprint (sameFile) once it was read:
 * a stat, without fingerprint's checks of what kind of file it is.
 */
export async function stateAt(path: string): Promise<FileState> {
  return stateOf(
    await stat(path, { bigint: true }).catch((err) => {
      throw sourceError(err, path)
    }),
  )
}

/**
 * Refuses a file or folder of a filesystem whose files the kernel writes as they are read
 * (KERNEL_FILESYSTEMS): SOURCE_INVALID, saying to copy it first.
 */
export async function refuseKernelFiles(path: string, kind: 'file' | 'folder'): Promise<void> {
  const made = KERNEL_FILESYSTEMS.get((await statfs(path).catch(() => undefined))?.type ?? 0)
  if (made === undefined) return
  throw new SourceInvalidError(
    kind === 'file'
      ? `${path} is a file the kernel makes as it is read (${made}): its size says nothing of its content; copy it to a regular file first (cat ${path} > copy) and send the copy`
      : `${path} is a folder of files the kernel makes as they are read (${made}): their sizes say nothing of their content; copy what you need to a regular folder first (cp -r) and send the copy`,
  )
}

/**
 * Filesystems whose files the kernel writes as they are read: their size is 0 (/proc) or a page
 * (/sys) whatever they hold, so indexing one gives an empty or a cut content. By statfs magic.
 */
const KERNEL_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs, /proc'],
  [0x62656572, 'sysfs, /sys'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroupfs'],
  [0x63677270, 'cgroup2fs'],
  [0x6e736673, 'nsfs'],
])

/** A stat's identity and state, as FileState compares them. */
export function stateOf(s: BigIntStats): FileState {
  return { dev: s.dev, ino: s.ino, size: Number(s.size), mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs }
}

/** True when `b` is the same file as `a`, unchanged (when each was taken aside). */
export function sameFile(a: FileState, b: FileState): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  )
}

/**
 * What a file that is no longer as fingerprinted (`now`, with its link count) may still serve:
 * a file touched since (a chmod, a touch, a rewrite in place, a new hard link) is the same file
 * with the same size, and its bytes may be the indexed ones, which only hashing each chunk
 * against its leaf can tell: the new fingerprint to hold it to (every chunk then hashed until
 * each has been, ChunkVouch's `unvouched`). Another file, another size, or a file removed
 * (no link left: an open handle still reads it) is CONTENT_CHANGED.
 */
export function touchedSince(path: string, was: FileState, now: FileState, links: bigint): FileFingerprint {
  if (links === 0n || now.dev !== was.dev || now.ino !== was.ino) {
    throw new ContentChangedError(
      `${path} was removed or replaced since it was indexed: publish it again to get a new ticket`,
    )
  }
  if (now.size !== was.size) {
    throw new ContentChangedError(
      `${path} changed since it was indexed (size ${was.size}→${now.size}): publish it again to get a new ticket`,
    )
  }
  return { ...now, takenNs: wallClockNs() }
}

/**
 * A published file that cannot be opened again: removed since it was indexed (CONTENT_CHANGED:
 * the content is gone), or what the error says.
 */
export function reopenError(err: unknown, path: string): HaulError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ContentChangedError(
      `${path} was removed since it was published: publish it again to get a new ticket`,
      {
        cause: err,
      },
    )
  }
  return sourceError(err, path)
}

/**
 * True when the fingerprint cannot vouch for the bytes: the file's last change (mtime or
 * ctime, whichever is later) was within RACY_WINDOW_NS of taking it, or is in the future
 * (a clock that moved back).
 */
export function isRacy(fp: FileFingerprint): boolean {
  return fp.takenNs - lastChangeNs(fp) < RACY_WINDOW_NS
}

/** The later of mtime and ctime: when the file last changed, as far as its stat tells. */
export function lastChangeNs(s: FileState): bigint {
  return s.mtimeNs > s.ctimeNs ? s.mtimeNs : s.ctimeNs
}

/** Chunks tracked for promotion at most (a 2 MiB bitmap); a racy file with more stays hashed. */
export const MAX_VOUCHED_CHUNKS = 2 ** 24

/** Wall clock in ns, the clock `takenNs` and the racy window are measured on. */
export function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n
}

/**
 * The serving side's view of a published file: ranges are read straight from
 * the original (no copy into a store). A changed fingerprint is caught here
 * with one fstat per request (see touchedSince). Where the fingerprint cannot vouch for the
 * bytes (`needsChunkHash`: the file was racily clean when indexed, or touched since), the
 * server also hashes each chunk against its leaf before sending it (see chunk-encoder.ts).
 * A file that is mostly holes is read through O_DIRECT where it can be (./direct-reads.ts).
 *
 * Its handle lives in an OpenFiles (./open-files.ts): closed when other files were used more
 * recently, opened again on the next read. Every open, the first and each reopen, checks the
 * file at the path against the fingerprint, so a file replaced, removed or changed meanwhile is
 * refused (CONTENT_CHANGED) exactly as one changed under an open handle is.
 */
export class SourceFile {
  readonly path: string
  #expected: FileFingerprint
  readonly #chunks: number
  readonly #files: OpenFiles
  /** Mostly holes, read through an O_DIRECT handle beside the buffered one (decided at open). */
  #sparse = false
  #direct = false
  #closed = false
  #vouch: ChunkVouch

  private constructor(path: string, files: OpenFiles, expected: FileFingerprint, chunks: number) {
    this.path = path
    this.#files = files
    this.#expected = expected
    this.#chunks = chunks
    this.#vouch = new ChunkVouch([expected], chunks)
  }

  /** What the file must still look like: as indexed, or as last touched (see touchedSince). */
  get expected(): FileFingerprint {
    return this.#expected
  }

  /** True while reads go through the O_DIRECT handle (a mostly sparse file). */
  get readsDirect(): boolean {
    return this.#direct
  }

  /** Bytes, as indexed. */
  get size(): number {
    return this.#expected.size
  }

  /** See ChunkVouch.needsChunkHash. */
  get needsChunkHash(): boolean {
    return this.#vouch.needsChunkHash
  }

  chunkHashed(index: number, readStartNs: bigint): void {
    this.#vouch.chunkHashed(index, readStartNs)
  }

  /**
   * `chunks`: the file's chunk count, for chunkHashed's bookkeeping. `files`: where its handle is
   * kept (an engine's, for serving); without one, a cache of its own holding just this file.
   */
  static async open(
    path: string,
    expected: FileFingerprint,
    chunks = 0,
    files: OpenFiles = new OpenFiles(1),
  ): Promise<SourceFile> {
    const src = new SourceFile(path, files, expected, chunks)
    const fh = await open(path, READ_NONBLOCK).catch((err) => {
      throw sourceError(err, path)
    })
    try {
      const blocks = await src.#checkUnchanged(fh)
      src.#sparse = mostlyHoles(expected.size, blocks)
      const direct = src.#sparse ? await DirectReads.open(path, expected) : undefined
      src.#direct = direct !== undefined
      // The handle just checked is the first one cached, not opened a second time.
      await files.use(
        src,
        0,
        () => new SourceHandle(fh, direct),
        () => {},
      )
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
    await this.#use((h) => this.#checkUnchanged(h.fh))
  }

  /** checkUnchanged on `fh`, returning the 512-byte blocks the file has allocated. */
  async #checkUnchanged(fh: FileHandle): Promise<number> {
    const s = await fh.stat({ bigint: true })
    refuseNotRegular(s, this.path)
    const now = stateOf(s)
    if (!sameFile(now, this.#expected)) {
      this.#expected = touchedSince(this.path, this.#expected, now, s.nlink)
      this.#vouch = new ChunkVouch([this.#expected], this.#chunks, true)
    }
    return Number(s.blocks)
  }

  /** Fills `into[0, length)` from `offset`; a short read means the file shrank. */
  async read(offset: number, length: number, into: Uint8Array): Promise<void> {
    await this.#use(async (h) => {
      let done = h.direct === undefined ? 0 : await h.direct.read(offset, length, into)
      while (done < length) {
        const { bytesRead } = await h.fh.read(into, done, length - done, offset + done)
        if (bytesRead === 0) {
          throw new ContentChangedError(`${this.path} is shorter than when it was indexed: publish it again`)
        }
        done += bytesRead
      }
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#files.forget(this)
  }

  #use<T>(use: (h: SourceHandle) => Promise<T>): Promise<T> {
    // Closed by an unpublish while a request read it: that content is no longer published.
    if (this.#closed) throw new ContentNotFoundError(`${this.path} is no longer published`)
    return this.#files.use(this, 0, () => this.#reopen(), use)
  }

  /** The file opened again after its handle was closed: refused unless it is the one indexed. */
  async #reopen(): Promise<SourceHandle> {
    const fh = await open(this.path, READ_NONBLOCK).catch((err) => {
      throw reopenError(err, this.path)
    })
    try {
      await this.#checkUnchanged(fh)
      const direct = this.#sparse ? await DirectReads.open(this.path, this.#expected) : undefined
      this.#direct = direct !== undefined
      return new SourceHandle(fh, direct)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }
}

/** A source file's open handles: the buffered one, and the O_DIRECT one of a mostly sparse file. */
class SourceHandle implements OpenHandle {
  readonly fh: FileHandle
  readonly direct: DirectReads | undefined

  constructor(fh: FileHandle, direct: DirectReads | undefined) {
    this.fh = fh
    this.direct = direct
  }

  async close(): Promise<void> {
    await this.direct?.close()
    await this.fh.close().catch(() => {})
  }
}

/**
 * Whether served chunks must be hashed before they are sent, for content made of files whose
 * fingerprints were taken at index time: a file, or a collection's pack of many.
 */
export class ChunkVouch {
  /**
   * Racy only: chunks hashed against their leaves from bytes read once the window after the
   * last change of any file had passed. Any later write changes mtime or ctime, which the fstat
   * per read catches; so once every chunk is here, the fingerprints vouch for the bytes again.
   */
  #vouched: Uint8Array | undefined
  #count = 0
  readonly #chunks: number
  readonly #fromNs: bigint

  /**
   * `unvouched`: a file was touched since its fingerprint was taken (see `touchedSince`), so
   * every chunk is hashed again until each has been, whatever the window says.
   */
  constructor(fingerprints: readonly FileFingerprint[], chunks: number, unvouched = false) {
    this.#chunks = chunks
    let last = 0n
    let racy = unvouched
    for (const fp of fingerprints) {
      const changed = lastChangeNs(fp)
      if (changed > last) last = changed
      if (isRacy(fp)) racy = true
    }
    this.#fromNs = last + RACY_WINDOW_NS
    // Beyond MAX_VOUCHED_CHUNKS nothing is tracked: such racy content stays hashed.
    if (racy) this.#vouched = new Uint8Array(chunks <= MAX_VOUCHED_CHUNKS ? Math.ceil(chunks / 8) : 0)
  }

  /**
   * A fingerprint was racy (see isRacy) and not every chunk has been hashed since the window
   * passed: only hashing each chunk shows the bytes are the indexed ones.
   */
  get needsChunkHash(): boolean {
    return this.#vouched !== undefined
  }

  /**
   * A chunk read from `readStartNs` on matched its leaf. Once every chunk has, each read after the
   * racy window, chunks are served on the fingerprints alone (no hash).
   */
  chunkHashed(index: number, readStartNs: bigint): void {
    const bits = this.#vouched
    if (bits === undefined || readStartNs < this.#fromNs || this.#chunks > MAX_VOUCHED_CHUNKS) return
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#chunks) return
    const mask = 1 << (index & 7)
    if ((bits[index >> 3]! & mask) !== 0) return
    bits[index >> 3]! |= mask
    if (++this.#count === this.#chunks) this.#vouched = undefined
  }
}
