/**
 * The receiving side's local state: the part file and journal at the destination, the
 * progress meter, the re-hash of a part file found without a usable journal, the verified-leaf
 * table and the leaf sidecar (when the fetch seeds what it has), and the checks and figures at
 * the end.
 */
import { contentId, type DescriptorHeader, encodeHeader } from '../descriptor/header.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import { InternalError, RootMismatchError } from '../errors.ts'
import { bytesEqual } from '../merkle/hash.ts'
import type { DirectWriteSlots } from '../storage/direct-writes.ts'
import type { Journal, JournalOptions } from '../storage/journal.ts'
import type { PartFile } from '../storage/part-file.ts'
import { ProgressMeter, type TransferProgress } from '../transfer/progress.ts'
import type { FetchResult } from '../transfer/transfer-types.ts'
import { LeafStore } from './partial-seed.ts'
import { Rehasher } from './rehash.ts'
import { openStorage, type ResumeInfo } from './resume.ts'
import type { SwarmOptions } from './swarm-options.ts'

export interface LocalTransfer {
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly part: PartFile
  readonly journal: Journal
  readonly meter: ProgressMeter
  readonly resume: ResumeInfo
  /** Set when chunks already in the part file must be hashed before they count. */
  readonly rehasher: Rehasher | undefined
}

/** What a fetch run works on (./coordinator.ts): the files, the meter and the leaves it verifies. */
export interface FetchLocal {
  readonly header: DescriptorHeader
  readonly part: PartFile
  readonly journal: Journal
  readonly meter: ProgressMeter
  /** The leaf sidecar, kept for partial seeding; undefined when this fetch does not seed. */
  readonly leaves: LeafStore | undefined
  readonly table: VerifiedLeafTable
}

/** Opens (or resumes) `<dest>.part` and its journal for the content `cid` names. */
export async function openLocalTransfer(
  dest: string,
  cid: Uint8Array,
  header: DescriptorHeader,
  storage: {
    readonly journal: JournalOptions
    readonly directWrites?: DirectWriteSlots | undefined
    /** See StorageRequest.overwrite. */
    readonly overwrite: boolean
  },
): Promise<LocalTransfer> {
  const headerBytes = encodeHeader(header)
  if (!bytesEqual(contentId(headerBytes), cid)) {
    throw new InternalError('the descriptor header does not re-encode to the bytes the content id names')
  }
  const { part, journal, rehash, resume } = await openStorage({
    dest,
    cid,
    headerBytes,
    totalSize: header.totalSize,
    leafCount: header.leafCount,
    journal: storage.journal,
    directWrites: storage.directWrites,
    overwrite: storage.overwrite,
  })
  const meter = new ProgressMeter(header.totalSize, header.leafCount, journal.bytes, journal.chunks)
  const rehasher = rehash.length > 0 ? new Rehasher(header, part, journal, meter, rehash) : undefined
  return { header, headerBytes, part, journal, meter, resume, rehasher }
}

/**
 * openLocalTransfer, plus the verified-leaf table (holding the leaf pages of the scheduler's
 * window, and a little more) and, when `seed` is set, the leaf sidecar partial seeding serves
 * pages from (emptied first when the part file starts afresh). The files are closed again if the
 * sidecar cannot be opened.
 */
export async function openFetchLocal(
  dest: string,
  cid: Uint8Array,
  header: DescriptorHeader,
  opts: {
    readonly journal: JournalOptions
    readonly directWrites?: DirectWriteSlots | undefined
    readonly overwrite: boolean
    readonly swarm: Pick<SwarmOptions, 'windowChunks'>
    readonly seed: boolean
  },
): Promise<LocalTransfer & FetchLocal> {
  const local = await openLocalTransfer(dest, cid, header, opts)
  const { part, journal, resume } = local
  let leaves: LeafStore | undefined
  if (opts.seed) {
    try {
      // A fresh or restarted part file has no verified pages worth keeping.
      leaves = await LeafStore.open(dest, header, resume.mode === 'fresh' || resume.mode === 'restart')
    } catch (err) {
      await journal.close()
      await part.close()
      throw err
    }
  }
  const pages = Math.ceil(opts.swarm.windowChunks / header.pageSize) + 2
  const table = new VerifiedLeafTable(header, { maxCachedPages: pages })
  return { ...local, leaves, table }
}

/**
 * Every chunk was checked against a leaf proven against the root; the counts
 * are the last check before the part file is committed.
 */
export function assertComplete(header: DescriptorHeader, journal: Journal, meter: ProgressMeter): void {
  if (journal.chunks !== header.leafCount || meter.bytesDone !== header.totalSize) {
    throw new RootMismatchError(
      `have ${journal.chunks} of ${header.leafCount} chunks (${meter.bytesDone} of ${header.totalSize} bytes): the transfer is incomplete`,
    )
  }
}

/**
 * The figures a finished fetch reports. The rate is of the bytes this run fetched: what an
 * earlier run left and this one kept took no time to move.
 */
export function transferResult(
  dest: string,
  local: Pick<LocalTransfer, 'header' | 'meter' | 'resume'>,
  retries: number,
): FetchResult {
  const { header, meter } = local
  const seconds = meter.snapshot().elapsedSeconds
  return {
    path: dest,
    bytes: header.totalSize,
    chunks: header.leafCount,
    seconds,
    rate: seconds > 0 ? meter.fetchedBytes / seconds : 0,
    resume: local.resume,
    retries,
  }
}

/**
 * How often the bytes of chunks on their way are looked at between whole chunks (reported when
 * they grew: they come in the sender's stream frames, up to 256 KiB).
 */
export const ARRIVING_REPORT_MS = 1000

/**
 * Calls `onProgress` at most every `intervalMs`, unless forced (state changes, the end), and
 * never twice for the same bytes done, arriving and checked (the last chunk's report and the
 * end's would be).
 */
export class ProgressThrottle {
  readonly #onProgress: ((p: TransferProgress) => void) | undefined
  readonly #intervalMs: number
  #last = 0
  #lastBytes = -1
  #lastArriving = -1
  #lastChecked = -1

  constructor(onProgress: ((p: TransferProgress) => void) | undefined, intervalMs = 100) {
    this.#onProgress = onProgress
    this.#intervalMs = intervalMs
  }

  /**
   * While chunks are fetched: looks at the bytes of chunks on their way (`arriving`, see
   * ProgressMeter.arrivingFrom) every ARRIVING_REPORT_MS and calls `report`, which reports them
   * when they grew, where otherwise a report waits for a whole chunk (a 1 MiB chunk takes 8 s at
   * 1 Mbit/s, 33 s at 256 kbit/s). Nothing when no one listens. Returns what stops it.
   */
  watchArriving(meter: ProgressMeter, arriving: () => number, report: () => void): () => void {
    if (this.#onProgress === undefined) return () => {}
    meter.arrivingFrom(arriving)
    const timer = setInterval(report, ARRIVING_REPORT_MS)
    timer.unref()
    return () => {
      clearInterval(timer)
      meter.arrivingFrom(undefined)
    }
  }

  report(meter: ProgressMeter | undefined, force: boolean): void {
    if (this.#onProgress === undefined || meter === undefined) return
    const now = performance.now()
    if (!force && now - this.#last < this.#intervalMs) return
    const p = meter.snapshot()
    const checked = p.check?.bytesChecked ?? -1
    if (
      p.bytesDone === this.#lastBytes &&
      p.bytesArriving === this.#lastArriving &&
      checked === this.#lastChecked
    )
      return
    this.#last = now
    this.#lastBytes = p.bytesDone
    this.#lastArriving = p.bytesArriving
    this.#lastChecked = checked
    this.#onProgress(p)
  }
}
