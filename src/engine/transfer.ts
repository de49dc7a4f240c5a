import type { DescriptorHeader } from '../descriptor/header.ts'
import { InternalError, RootMismatchError } from '../errors.ts'
import type { Network } from '../net/network.ts'
import { PROTOCOL_ID } from '../protocol/messages.ts'
import { PartFile } from '../storage/part-file.ts'
import type { WorkerPool } from '../workers/pool.ts'
import { ChunkFetcher, type FetchLimits, fetchHeader } from './fetcher.ts'
import type { MemoryBudget } from './memory-budget.ts'
import { ProgressMeter, type TransferProgress } from './progress.ts'
import { RemoteSession } from './remote-session.ts'
import type { Ticket } from './ticket.ts'
import type { TransferJob } from './transfer-machine.ts'

export interface TransferTimeouts {
  /** Dialing a peer. @default 10_000 */
  connectMs: number
  /** A stream with no bytes in either direction for this long is closed. @default 30_000 */
  idleMs: number
  /** A request with no reply frame for this long fails. @default 30_000 */
  requestMs: number
}

export interface FetchResult {
  readonly path: string
  readonly bytes: number
  readonly chunks: number
  readonly seconds: number
  /** Mean goodput, bytes per second. */
  readonly rate: number
}

export interface FetchJobDeps {
  readonly network: Network
  readonly pool: WorkerPool
  readonly budget: MemoryBudget
  readonly limits: FetchLimits
  readonly timeouts: TransferTimeouts
  readonly maxFrame: number
}

/**
 * The receiving side of one transfer, split into the steps the transfer
 * machine runs. It owns the session and the part file and releases both in
 * `cleanup`, whatever state the machine ended in.
 */
export class FetchJob implements TransferJob {
  readonly ticket: Ticket
  readonly dest: string
  readonly #deps: FetchJobDeps
  readonly #onProgress: ((p: TransferProgress) => void) | undefined
  #session: RemoteSession | undefined
  #header: DescriptorHeader | undefined
  #part: PartFile | undefined
  #meter: ProgressMeter | undefined
  #lastReport = 0
  #committed = false

  constructor(deps: FetchJobDeps, ticket: Ticket, dest: string, onProgress?: (p: TransferProgress) => void) {
    this.#deps = deps
    this.ticket = ticket
    this.dest = dest
    this.#onProgress = onProgress
  }

  get header(): DescriptorHeader | undefined {
    return this.#header
  }

  progress(): TransferProgress | undefined {
    return this.#meter?.snapshot()
  }

  async resolve(signal: AbortSignal): Promise<void> {
    const { network, timeouts, maxFrame } = this.#deps
    const stream = await network.openStream(this.ticket.peerId, [...this.ticket.addrs], PROTOCOL_ID, {
      signal,
      idleTimeoutMs: timeouts.idleMs,
    })
    this.#session = await RemoteSession.start(stream, {
      maxFrame,
      requestTimeoutMs: timeouts.requestMs,
      signal,
    })
    this.#header = await fetchHeader(this.#fetchContext(), signal)
    this.#part = await PartFile.open(this.dest, this.#header.totalSize)
    this.#meter = new ProgressMeter(this.#header.totalSize, this.#header.leafCount)
    this.#report(true)
  }

  async fetchChunks(signal: AbortSignal): Promise<void> {
    const { header, part, meter } = this.#ready()
    const fetcher = new ChunkFetcher(this.#fetchContext(), header, part, meter, () => this.#report(false))
    await fetcher.run(signal)
  }

  async finalize(_signal: AbortSignal): Promise<void> {
    const { header, part, meter } = this.#ready()
    // Every chunk was checked against a leaf proven against the root; the count is the last check.
    if (meter.bytesDone !== header.totalSize) {
      throw new RootMismatchError(
        `wrote ${meter.bytesDone} of ${header.totalSize} bytes: the transfer is incomplete`,
      )
    }
    await part.commit()
    this.#committed = true
    await this.#session?.close()
    this.#report(true)
  }

  result(): FetchResult {
    const { header, meter } = this.#ready()
    const seconds = meter.snapshot().elapsedSeconds
    return {
      path: this.dest,
      bytes: header.totalSize,
      chunks: header.leafCount,
      seconds,
      rate: seconds > 0 ? header.totalSize / seconds : 0,
    }
  }

  /** Releases the stream and the part file; the part file stays on disk unless the transfer completed. */
  async cleanup(): Promise<void> {
    await this.#session?.close().catch(() => {})
    if (!this.#committed) await this.#part?.close()
  }

  #fetchContext() {
    if (this.#session === undefined) throw new InternalError('transfer used before it resolved')
    return {
      cid: this.ticket.cid,
      session: this.#session,
      pool: this.#deps.pool,
      budget: this.#deps.budget,
      limits: this.#deps.limits,
    }
  }

  #ready(): { header: DescriptorHeader; part: PartFile; meter: ProgressMeter } {
    if (this.#header === undefined || this.#part === undefined || this.#meter === undefined) {
      throw new InternalError('transfer used before it resolved')
    }
    return { header: this.#header, part: this.#part, meter: this.#meter }
  }

  #report(force: boolean): void {
    if (this.#onProgress === undefined || this.#meter === undefined) return
    const now = performance.now()
    if (!force && now - this.#lastReport < 100) return
    this.#lastReport = now
    this.#onProgress(this.#meter.snapshot())
  }
}
