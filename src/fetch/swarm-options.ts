/** Multi-peer fetches (several providers, partial seeding). Engine option `swarm`; defaults and ranges: src/engine/config/table.ts. */
export interface SwarmOptions {
  /** Chunks failing verification from one peer before it is dropped for that content. */
  maxPeerFailures: number
  /** Most peers one chunk is requested from at once in the endgame; 1 turns the endgame off. */
  endgamePeers: number
  /** How often a partial seeder's have-bitmap is read again. */
  haveIntervalMs: number
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
