import { ConfigInvalidError } from '../errors.ts'

/** Multi-peer fetches (several providers, partial seeding). Engine option `swarm`. */
export interface SwarmOptions {
  /** Chunks failing verification from one peer before it is dropped for that content. @default 3 */
  maxPeerFailures: number
  /** Most peers one chunk is requested from at once in the endgame; 1 turns the endgame off. @default 2 */
  endgamePeers: number
  /** How often a partial seeder's have-bitmap is read again. @default 1_000 */
  haveIntervalMs: number
  /** Reconnects to a lost provider in a row (without a verified chunk between) before it is given up. @default 3 */
  peerRetries: number
  /** How long a transfer waits for a needed chunk no live provider holds before failing with NO_PROVIDER. @default 30_000 */
  waitForChunkMs: number
  /** Chunks the scheduler considers at once (rarest first inside it); bounds leaf pages held. @default 4096 */
  windowChunks: number
  /** get-chunks requests one peer may have open at once. @default 16 */
  maxRequestsPerPeer: number
  /** Serve the chunks a multi-peer fetch has verified to other peers while it runs (partial seeding). @default true */
  serve: boolean
}

export const defaultSwarmOptions: Readonly<SwarmOptions> = {
  maxPeerFailures: 3,
  endgamePeers: 2,
  haveIntervalMs: 1_000,
  peerRetries: 3,
  waitForChunkMs: 30_000,
  windowChunks: 4096,
  maxRequestsPerPeer: 16,
  serve: true,
}

export function verifySwarmOptions(o: SwarmOptions): void {
  for (const [k, v] of Object.entries(o)) {
    if (k === 'serve') {
      if (typeof v !== 'boolean') throw new ConfigInvalidError('swarm.serve must be true or false')
    } else if (!Number.isSafeInteger(v) || (v as number) < (k === 'peerRetries' ? 0 : 1)) {
      throw new ConfigInvalidError(
        `swarm.${k} must be a whole number >= ${k === 'peerRetries' ? 0 : 1}, got ${v}`,
      )
    }
  }
}
