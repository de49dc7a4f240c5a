import type { ResumeInfo } from '../fetch/resume.ts'

/** Engine option `timeouts`, in ms; defaults and ranges: src/engine/config/table.ts. */
export interface TransferTimeouts {
  /** Dialing a peer. */
  connectMs: number
  /**
   * A connection that reads nothing and gets none of its bytes into the network for this long
   * is closed: its peer is gone (src/net/connection-liveness.ts). Not a transfer's own bound,
   * but the connections it runs on.
   */
  deadConnectionMs: number
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

/**
 * How a fetch reached a provider: `direct`, `relayed` (through a circuit relay the whole time)
 * or `upgraded` (through a relay first, then directly once a hole punch made a connection).
 */
export type TransferRoute = 'direct' | 'relayed' | 'upgraded'

/** The route of a whole fetch: relayed if any provider was only reached through a relay, and so on. */
export function routeOf(stats: SwarmStats | undefined): TransferRoute | undefined {
  const routes = new Set(stats?.peers.map((p) => p.route))
  for (const r of ['relayed', 'upgraded', 'direct'] as const) if (routes.has(r)) return r
  return undefined
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
    /** How the peer was reached; absent when no stream to it opened. */
    readonly route?: TransferRoute
    /** Why the peer is out of this transfer, if it is: its error code. */
    readonly out?: string
  }>
}
