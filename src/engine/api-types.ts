/**
 * The types of the Engine's public API (options, results, the transfer handle), apart from the
 * class that implements them (engine.ts), which re-exports them.
 */
import type { DescriptorHeader } from '../descriptor/header.ts'
import type { ResumeInfo } from '../fetch/resume.ts'
import type { Priority } from '../resources/fair-queue.ts'
import type { IndexResult } from '../serve/indexer.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import type { RetryInfo } from '../transfer/retry.ts'
import type { TransferStatus } from '../transfer/transfer-machine.ts'
import type { FetchResult, SwarmStats } from '../transfer/transfer-types.ts'
import type { Engine } from './engine.ts'

/**
 * An engine's public API, whichever thread it runs in (`createEngine`'s `thread` option): the
 * public members of the Engine class, which an engine in a worker thread has too.
 */
export type EngineApi = Pick<Engine, keyof Engine>

export interface PublishOptions extends SeedOptions {
  signal?: AbortSignal
  onProgress?: (bytesDone: number, totalBytes: number) => void
}

export interface SeedOptions {
  /**
   * Serve to anyone who names the content id, as haul did before tickets carried secrets: the
   * ticket carries no secret. Otherwise only requests presenting the ticket's secret are
   * answered; any other gets what unknown content gets (CONTENT_NOT_FOUND). @default false
   */
  public?: boolean
  /**
   * Announce the content id on the DHT (`dht`), so `fetch(contentId)` finds this engine. The
   * content id is then all a receiver needs: announced content is served publicly (as `public`).
   * @default true when the engine runs the DHT
   */
  announce?: boolean
}

export interface Published {
  /** Give this string to the receiver. */
  readonly ticket: string
  readonly index: IndexResult
  /**
   * When announced on the DHT: settles once the first announcement was sent, true when a peer
   * took the record (false: none yet; it is sent again every `dht.refreshMs`). Never rejects.
   */
  readonly announced?: Promise<boolean>
}

export interface FetchOptions {
  signal?: AbortSignal
  /**
   * At most every 100 ms, and as the state changes; between whole chunks, when the bytes of
   * one on their way (`bytesArriving`) grew, looked at every second. While a resume checks what an earlier run
   * left (after a crash, or without a usable journal), before fetching the rest, or a file of the
   * content's size already at the destination is read back, `check` holds
   * that check's figures; its last call has them at their totals.
   */
  onProgress?: (progress: TransferProgress) => void
  /** Called when a transient failure sends the transfer to `retrying` (before the backoff delay). */
  onRetry?: (info: RetryInfo) => void
  /**
   * Called once the fetch has looked at its destination, when an earlier run left something
   * there: what it keeps (`journal`), must re-hash first (`rehash`, counted in `keptBytes` as it
   * verifies), discards (`restart`) or finds complete (`present`). Not called for a fresh start.
   */
  onResume?: (resume: ResumeInfo, progress: TransferProgress) => void
  /** Share of download bandwidth under contention (see `priorityWeights`). @default 'normal' */
  priority?: Priority
  /** This transfer's own download limit, bytes per second. @default `limits.perTransferDownloadBytesPerSec` */
  maxBytesPerSec?: number
  /**
   * More peers serving the same content, beside those the ticket names (a multi-peer fetch). One
   * without a `secret` of its own is asked with the ticket's (a peer fetching the same ticket
   * serves that). @default none
   */
  providers?: readonly Provider[]
  /**
   * Replace a file already at `dest` that holds other data. Without it such a fetch fails with
   * DESTINATION_EXISTS before writing anything. A file that already holds this very content is
   * kept either way, and the fetch completes at once (`result.resume.mode === 'present'`).
   * @default false
   */
  overwrite?: boolean
  /**
   * When another fetch is writing `dest` (in this engine or another process): wait for it to end
   * instead of failing with DESTINATION_BUSY. @default false
   */
  waitIfBusy?: boolean
  /** With `waitIfBusy`: called once as the waiting begins, with who writes `dest` (a process, since when). */
  onWait?: (holder: string) => void
  /**
   * Seed while fetching: keep the verified leaf pages in `<dest>.part.leaves` and serve the
   * chunks verified so far to other peers (partial seeding, `swarm.serve`), with a resume
   * journal whatever the size. @default true when the ticket and `providers` name more than one peer
   */
  swarm?: boolean
  /**
   * Become a provider (the engine runs the DHT): announce the content id once the fetch has the
   * header, serve the chunks verified so far meanwhile (partial seeding), and once the file is
   * complete serve the whole of it publicly (re-read once to index it) until `unpublish` or
   * `stop()`. @default false
   */
  provide?: boolean
}

/** What the engine's own fetches may add: a check of the header, an intermediate destination. */
export interface InternalFetchOptions extends FetchOptions {
  accept?: ((header: DescriptorHeader) => void) | undefined
  /** See FetchJobDeps.scratch. */
  scratch?: boolean | undefined
  /** See FetchJobHooks.onChunk. */
  onChunk?: ((index: number) => void) | undefined
}

/** A partial seed: the chunks of a resumable `<dest>.part` this engine now serves. */
export interface Seeded {
  readonly ticket: string
  readonly cid: Uint8Array
  /** Chunks verified and served. */
  readonly chunks: number
  readonly leafCount: number
  /** When announced on the DHT: as Published.announced. */
  readonly announced?: Promise<boolean>
}

export interface TransferHandle {
  readonly id: string
  /** Resolves when the file is whole and verified at `dest`; rejects with a HaulError otherwise. */
  readonly result: Promise<FetchResult>
  status(): TransferStatus
  progress(): TransferProgress | undefined
  /**
   * Ends the transfer: `result` rejects with ABORTED once the step it was in has stopped, its
   * stream reset (never waiting on the peer) and its part file and journal closed for a resume.
   */
  cancel(): void
  /**
   * One more peer holding the content: the fetch uses it from now on (or from its start, if still
   * queued). Without a `secret` of its own it is asked with the ticket's (see FetchOptions.providers).
   */
  addProvider(provider: Provider): void
  /** Duplicates, corrupt chunks and what each provider gave so far; undefined until the fetch is admitted. */
  swarmStats(): SwarmStats | undefined
}
