import { ConfigInvalidError } from '../errors.ts'

/** How the resume journal (./journal.ts) trades crash re-downloads against disk syncs. */
export interface JournalOptions {
  /**
   * Keep a resume journal. Off: nothing is synced before the end, and a
   * fetch that finds `<dest>.part` re-hashes it against the leaves instead.
   * @default true
   */
  enabled: boolean
  /**
   * Most chunk bytes written and not yet synced (a flush: fdatasync the part
   * file, then write and fdatasync the journal). A flush starts in the
   * background at half of it; recording a chunk waits only when the bytes not
   * yet synced, counting those the running flush is syncing, reach it. With the
   * fetch window this bounds what a crash re-downloads: at most
   * flushBytes + fetch.windowBytes + one chunk.
   * @default 32 MiB
   */
  flushBytes: number
  /** A flush also happens once this long has passed since the last one (checked as chunks land). @default 2_000 */
  flushIntervalMs: number
  /**
   * Transfers of at most this many bytes keep no journal file: resuming one re-hashes its
   * part file against the verified leaves instead (at most this many bytes, milliseconds).
   * Spares a small transfer creating, syncing and deleting a second file (measured: most of
   * its disk syncs). 0 journals every transfer.
   * @default 4 MiB
   */
  minBytes: number
  /**
   * Most chunks a journal tracks; a descriptor with more fails with
   * BUDGET_EXCEEDED before anything is allocated. Memory: maxChunks / 8 bytes.
   * @default 2^28 (32 MiB of bitmap: 256 TiB at 1 MiB chunks)
   */
  maxChunks: number
}

export const defaultJournalOptions: Readonly<JournalOptions> = {
  enabled: true,
  flushBytes: 32 * 1024 * 1024,
  flushIntervalMs: 2_000,
  minBytes: 4 * 1024 * 1024,
  maxChunks: 2 ** 28,
}

export function verifyJournalOptions(o: JournalOptions): void {
  if (typeof o.enabled !== 'boolean') throw new ConfigInvalidError('journal.enabled must be true or false')
  for (const k of ['flushBytes', 'flushIntervalMs', 'maxChunks'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) {
      throw new ConfigInvalidError(`journal.${k} must be a whole number >= 1, got ${o[k]}`)
    }
  }
  if (!Number.isSafeInteger(o.minBytes) || o.minBytes < 0) {
    throw new ConfigInvalidError(`journal.minBytes must be a whole number >= 0, got ${o.minBytes}`)
  }
}
