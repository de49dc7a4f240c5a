import type { ResumeInfo } from '../fetch/resume.ts'

/** Engine option `timeouts`, in ms; defaults and ranges: src/engine/config/table.ts. */
export interface TransferTimeouts {
  /** Dialing a peer. */
  connectMs: number
  /** A stream with no bytes in either direction for this long is closed (a stalled peer: retried). */
  idleMs: number
  /**
   * A request whose replies make no progress for this long fails with TIMEOUT (retried).
   * Progress is a reply the request had not received yet: a page or chunk it asked for and did
   * not have, a have-run, the header, or its end. Repeated frames do not count, so a peer that
   * re-sends what it already sent fails like a silent one.
   */
  requestMs: number
  /**
   * A stream being closed (a transfer cancelled, failed, done, or the engine stopping) waits this
   * long for the peer to close its side, then is reset. Bounds `cancel()` and `engine.stop()`
   * whatever the peer does: one that keeps sending restarts the idle timer with every byte.
   */
  closeMs: number
}

export interface FetchResult {
  readonly path: string
  readonly bytes: number
  readonly chunks: number
  readonly seconds: number
  /** Mean goodput of this run: bytes fetched (not those kept from an earlier run) per second. */
  readonly rate: number
  /** What this fetch found at the destination and kept. */
  readonly resume: ResumeInfo
  /** Times the transfer went through `retrying`. */
  readonly retries: number
  /** Duplicates, corrupt chunks, and what each provider gave. */
  readonly swarm?: SwarmStats
}

/** What a fetch did, per provider and in total. */
export interface SwarmStats {
  /** Chunk bytes that arrived after another peer's copy was verified (endgame duplicates). */
  readonly duplicateBytes: number
  /** Chunks that failed verification (never written). */
  readonly corruptChunks: number
  readonly peers: ReadonlyArray<{
    readonly peerId: string
    readonly verifiedBytes: number
    readonly failures: number
    readonly stalls: number
    /** Why the peer is out of this transfer, if it is: its error code. */
    readonly out?: string
  }>
}
