/** Multi-peer fetches (several providers, partial seeding). Engine option `swarm`; defaults and ranges: src/engine/config/table.ts. */
export interface SwarmOptions {
  /** Chunks failing verification from one peer before it is dropped for that content. */
  maxPeerFailures: number
  /** Most peers one chunk is requested from at once in the endgame; 1 turns the endgame off. */
  endgamePeers: number
  /** How often a partial seeder's have-bitmap is read again. */
  haveIntervalMs: number
  /** Have-bitmap reads one fetch makes per second at most, over all its partial seeders. */
  maxHaveReadsPerSec: number
  /** Reconnects to a lost provider in a row (without a verified chunk between) before it is given up. */
  peerRetries: number
  /** How long a transfer waits for a needed chunk no live provider holds before failing with NO_PROVIDER. */
  waitForChunkMs: number
  /** Chunks the scheduler considers at once (rarest first inside it); bounds leaf pages held. */
  windowChunks: number
  /** get-chunks requests one peer may have open at once. */
  maxRequestsPerPeer: number
  /** Serve the chunks a multi-peer fetch has verified to other peers while it runs (partial seeding). */
  serve: boolean
}

/**
 * How long a fetch waits before reading a partial seeder's have-bitmap again, with `partialPeers`
 * of them connected: `haveIntervalMs`, or longer so that all of them together are read at most
 * `maxHaveReadsPerSec` times a second. Why: every read is a request and an answer through Noise
 * and yamux on both sides. Fifty receivers each polling 32 partial peers every second
 * (bench/dht-fanout.ts, two cores) spent the CPU the chunks needed: the fan-out took 300 s; with
 * each peer read every 4 s, 218 s.
 */
export function haveReadInterval(
  o: Pick<SwarmOptions, 'haveIntervalMs' | 'maxHaveReadsPerSec'>,
  partialPeers: number,
): number {
  return Math.max(o.haveIntervalMs, Math.ceil((partialPeers * 1000) / o.maxHaveReadsPerSec))
}
