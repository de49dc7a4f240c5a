import { engineDefaults } from '../engine/config/resolve.ts'

/**
 * How the resume journal (./journal.ts) trades crash re-downloads against disk syncs. Engine
 * option `journal`; defaults and ranges: src/engine/config/table.ts.
 */
export interface JournalOptions {
  /**
   * Keep a resume journal. Off: nothing is synced before the end, and a
   * fetch that finds `<dest>.part` re-hashes it against the leaves instead.
   */
  enabled: boolean
  /**
   * Most chunk bytes written and not yet synced (a flush: fdatasync the part
   * file, then write and fdatasync the journal). A flush starts in the
   * background at half of it; recording a chunk waits only when the bytes not
   * yet synced, counting those the running flush is syncing, reach it. With the
   * fetch window this bounds what a crash re-downloads: at most
   * flushBytes + fetch.windowBytes + one chunk.
   */
  flushBytes: number
  /** A flush also happens once this long has passed since the last one (checked as chunks land). */
  flushIntervalMs: number
  /**
   * Transfers of at most this many bytes keep no journal file: resuming one re-hashes its
   * part file against the verified leaves instead (at most this many bytes, milliseconds).
   * Spares a small transfer creating, syncing and deleting a second file (measured: most of
   * its disk syncs). 0 journals every transfer.
   */
  minBytes: number
  /**
   * Most chunks a journal tracks; a descriptor with more fails with
   * BUDGET_EXCEEDED before anything is allocated. Memory: maxChunks / 8 bytes.
   */
  maxChunks: number
}

/** The engine's defaults, for a journal used outside an engine (tests, benchmarks). */
export const defaultJournalOptions: Readonly<JournalOptions> = engineDefaults.journal
