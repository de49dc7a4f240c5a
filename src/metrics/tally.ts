import { type ErrorCode, isHaulError, WIRE_CODES } from '../errors.ts'
import type { ServeEvent } from '../serve/serve-events.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import type { TransferStatus } from '../transfer/transfer-machine.ts'
import type { SwarmStats } from '../transfer/transfer-types.ts'
import { PeerCounters } from './peer-counters.ts'

/** An admitted fetch, as the tally reads it at scrape time. */
export interface LiveJob {
  status(): TransferStatus
  progress(): TransferProgress | undefined
  stats(): SwarmStats | undefined
}

/** What the tally has taken from one live job so far: the next reading adds only the growth. */
interface Seen {
  readonly job: LiveJob
  received: number
  kept: number
  corrupt: number
  duplicate: number
  readonly peers: Map<string, number>
}

export type Outcome = 'done' | 'failed' | 'cancelled'

/** A label from the fixed list of error codes (src/errors.ts): anything else is INTERNAL. */
export function codeLabel(err: unknown): ErrorCode {
  return isHaulError(err) && err.code in WIRE_CODES ? err.code : 'INTERNAL'
}

/**
 * The counters behind an engine's metrics. Transfers are read at scrape time (`readLive`) and
 * once more as they settle, so the fetch path does no work for metrics; serving is counted from
 * the engine's serve events. Every counter only grows: a reading adds what a job gained since
 * the previous one, never less than nothing.
 */
export class MetricsTally {
  readonly #live = new Map<string, Seen>()
  receivedBytes = 0
  keptBytes = 0
  corruptChunks = 0
  duplicateBytes = 0
  sentBytes = 0
  sentWireBytes = 0
  sentChunks = 0
  sessionsOpened = 0
  readonly finished = new Map<Outcome, number>()
  readonly failures = new Map<ErrorCode, number>()
  readonly retries = new Map<ErrorCode, number>()
  readonly sessionsEnded = new Map<'closed' | 'failed' | 'stopped', number>()
  readonly serveFailures = new Map<ErrorCode, number>()
  readonly peersSent: PeerCounters
  readonly peersReceived: PeerCounters

  constructor(peerSeries?: number) {
    this.peersSent = new PeerCounters(peerSeries)
    this.peersReceived = new PeerCounters(peerSeries)
  }

  /** A fetch was admitted: it runs as `job` under `id` until `settled(id)`. */
  started(id: string, job: LiveJob): void {
    this.#live.set(id, { job, received: 0, kept: 0, corrupt: 0, duplicate: 0, peers: new Map() })
  }

  /** The admitted fetch `id` ended: its last reading is taken and it is no longer read. */
  settled(id: string): void {
    const seen = this.#live.get(id)
    if (seen === undefined) return
    this.#read(seen)
    this.#live.delete(id)
  }

  /** A fetch (admitted or not) ended with `err`, or completed when `err` is undefined. */
  finishedWith(err?: unknown): void {
    const outcome: Outcome =
      err === undefined ? 'done' : isHaulError(err) && err.code === 'ABORTED' ? 'cancelled' : 'failed'
    bump(this.finished, outcome)
    if (outcome === 'failed') bump(this.failures, codeLabel(err))
  }

  retried(err: unknown): void {
    bump(this.retries, codeLabel(err))
  }

  /** Reads every admitted fetch; returns how many are in each state. */
  readLive(): Map<TransferStatus, number> {
    const states = new Map<TransferStatus, number>()
    for (const seen of this.#live.values()) {
      this.#read(seen)
      bump(states, seen.job.status())
    }
    return states
  }

  /** The engine's serve events (`Engine.onServe`): bytes sent, sessions and how they ended. */
  readonly onServe = (e: ServeEvent): void => {
    if (e.type === 'chunks-served') {
      this.sentBytes += e.bytes
      this.sentWireBytes += e.wireBytes
      this.sentChunks += e.chunks
      this.peersSent.add(e.peerId, e.bytes)
    } else if (e.type === 'session-opened') this.sessionsOpened++
    else if (e.type === 'session-ended') {
      bump(this.sessionsEnded, e.reason)
      if (e.reason === 'failed') bump(this.serveFailures, e.code ?? 'INTERNAL')
    }
  }

  #read(seen: Seen): void {
    const p = seen.job.progress()
    if (p !== undefined) {
      this.receivedBytes += grow(seen, 'received', p.bytesDone - p.keptBytes)
      this.keptBytes += grow(seen, 'kept', p.keptBytes)
    }
    const s = seen.job.stats()
    if (s === undefined) return
    this.corruptChunks += grow(seen, 'corrupt', s.corruptChunks)
    this.duplicateBytes += grow(seen, 'duplicate', s.duplicateBytes)
    for (const peer of s.peers) {
      const before = seen.peers.get(peer.peerId) ?? 0
      if (peer.verifiedBytes <= before) continue
      seen.peers.set(peer.peerId, peer.verifiedBytes)
      this.peersReceived.add(peer.peerId, peer.verifiedBytes - before)
    }
  }
}

/** What `seen[key]` grew by to reach `now` (0 if it did not), recording `now` as seen. */
function grow(seen: Seen, key: 'received' | 'kept' | 'corrupt' | 'duplicate', now: number): number {
  if (now <= seen[key]) return 0
  const d = now - seen[key]
  seen[key] = now
  return d
}

function bump<K>(m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1)
}
