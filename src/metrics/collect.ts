import { Counter, Gauge, Registry } from 'prom-client'
import type { EngineStats } from '../engine/stats.ts'
import type { TransferStatus } from '../transfer/transfer-machine.ts'
import type { MetricsTally } from './tally.ts'

/** States a live transfer is counted in (`haul_transfers`): those before it settles. */
const LIVE_STATES = ['resolving', 'fetching', 'retrying', 'finalizing'] as const

/** What an engine's metrics read at scrape time. */
export interface MetricsSource {
  stats(): EngineStats
  readonly tally: MetricsTally
}

type Level = (s: EngineStats) => number

/** Levels from `Engine.stats()`, by metric name: help text, and how to read it. */
const LEVELS: Record<string, [help: string, read: Level]> = {
  haul_memory_budget_bytes: ['The memory budget (memoryBudget).', (s) => s.memory.limitBytes],
  haul_memory_used_bytes: ['Budget leased now, idle kept buffers included.', (s) => s.memory.usedBytes],
  haul_memory_work_bytes: ['Budget leased by chunk work in flight.', (s) => s.memory.workBytes],
  haul_memory_peak_bytes: ['Highest budget leased since start.', (s) => s.memory.peakBytes],
  haul_memory_fetch_used_bytes: ['Budget leased by fetches.', (s) => s.memory.fetches.usedBytes],
  haul_memory_serve_leased_bytes: ['Budget leased by serving streams.', (s) => s.serving.leasedBytes],
  haul_memory_waiting: ['Requests waiting for budget memory.', (s) => s.memory.waiting],
  haul_memory_fetch_waiting: [
    'Fetch requests waiting for their part of the budget.',
    (s) => s.memory.fetches.waiting,
  ],
  haul_transfers_active: ['Fetches admitted now (maxActiveTransfers).', (s) => s.transfers.active],
  haul_transfers_queued: ['Fetches waiting for their turn.', (s) => s.transfers.queued],
  haul_worker_tasks_in_flight: [
    'Tasks handed to the worker threads, not finished.',
    (s) => s.workers.tasksInFlight,
  ],
  haul_worker_tasks_queued: ['Worker tasks accepted and not running yet.', (s) => s.workers.tasksQueued],
  haul_serve_contents: ['Content ids served (published files and partial seeds).', (s) => s.serving.contents],
  haul_serve_peers: ['Peers with a serving stream open or a lease held.', (s) => s.serving.peers],
  haul_connections: ['Open libp2p connections.', (s) => s.network.connections],
  haul_streams_open: ['Protocol streams open, both directions.', (s) => s.network.openStreams],
  haul_socket_queued_bytes: [
    'Encrypted bytes waiting in the TCP connections for the kernel.',
    (s) => s.network.socketQueuedBytes,
  ],
  haul_sessions_idle: ['Streams kept open for the next fetch from the same peer.', (s) => s.sessions.idle],
}

/**
 * An engine's Prometheus metrics in a Registry of its own (several engines may share a
 * process), set from the engine's counters and one `stats()` snapshot each time `refresh` runs:
 * right before each scrape, so nothing is computed between scrapes.
 */
export class EngineMetrics {
  readonly registry = new Registry()
  readonly #source: MetricsSource
  readonly #levels: Array<[Gauge, Level]>
  readonly #set: Array<() => void> = []

  constructor(source: MetricsSource) {
    this.#source = source
    const registers = [this.registry]
    this.#levels = Object.entries(LEVELS).map(([name, [help, read]]) => [
      new Gauge({ name, help, registers }),
      read,
    ])
    const t = source.tally
    const gauge = (name: string, help: string, labelNames: string[] = []): Gauge =>
      new Gauge({ name, help, labelNames, registers })
    const counter = (name: string, help: string, labelNames: string[] = []): Counter =>
      new Counter({ name, help, labelNames, registers })
    const total = (c: Counter, value: () => number): void => {
      this.#set.push(() => {
        c.reset()
        c.inc(value())
      })
    }
    const byLabel = <K extends string>(
      c: Counter,
      label: string,
      values: () => Iterable<[K, number]>,
    ): void => {
      this.#set.push(() => {
        c.reset()
        for (const [k, v] of values()) c.inc({ [label]: k }, v)
      })
    }
    total(
      counter('haul_received_bytes_total', 'Chunk bytes fetched and verified (kept bytes not included).'),
      () => t.receivedBytes,
    )
    total(
      counter('haul_kept_bytes_total', 'Bytes an earlier run left at a destination, verified and kept.'),
      () => t.keptBytes,
    )
    total(counter('haul_sent_bytes_total', 'Chunk bytes served, as in the file.'), () => t.sentBytes)
    total(
      counter('haul_sent_wire_bytes_total', 'Chunk bytes served, as on the wire (compressed).'),
      () => t.sentWireBytes,
    )
    total(counter('haul_sent_chunks_total', 'Chunks served.'), () => t.sentChunks)
    total(
      counter(
        'haul_chunks_verification_failed_total',
        'Fetched chunks that failed verification (never written).',
      ),
      () => t.corruptChunks,
    )
    total(
      counter('haul_duplicate_bytes_total', 'Chunk bytes fetched after another peer’s copy was verified.'),
      () => t.duplicateBytes,
    )
    total(
      counter('haul_serve_sessions_opened_total', 'Serving sessions opened by peers.'),
      () => t.sessionsOpened,
    )
    byLabel(
      counter('haul_transfers_total', 'Fetches settled, by outcome.', ['outcome']),
      'outcome',
      () => t.finished,
    )
    byLabel(
      counter('haul_transfer_failures_total', 'Fetches failed, by error code.', ['code']),
      'code',
      () => t.failures,
    )
    byLabel(
      counter('haul_transfer_retries_total', 'Retries after transient failures, by error code.', ['code']),
      'code',
      () => t.retries,
    )
    byLabel(
      counter('haul_serve_sessions_ended_total', 'Serving sessions ended, by reason.', ['reason']),
      'reason',
      () => t.sessionsEnded,
    )
    byLabel(
      counter('haul_serve_session_failures_total', 'Serving sessions that failed, by error code.', ['code']),
      'code',
      () => t.serveFailures,
    )
    byLabel(
      counter('haul_peer_sent_bytes_total', 'Chunk bytes served, per peer (bounded: see docs/METRICS.md).', [
        'peer',
      ]),
      'peer',
      () => t.peersSent.series(),
    )
    byLabel(
      counter(
        'haul_peer_received_bytes_total',
        'Chunk bytes verified, per providing peer (bounded: see docs/METRICS.md).',
        ['peer'],
      ),
      'peer',
      () => t.peersReceived.series(),
    )
    const states = gauge('haul_transfers', 'Fetches not settled, by state.', ['state'])
    this.#set.push(() => {
      const live = this.#live
      let admitted = 0
      for (const n of live.values()) admitted += n
      // Fetches not admitted yet (waiting for their turn or their destination) are resolving.
      const waiting = Math.max(0, (this.#stats?.transfers.unfinished ?? 0) - admitted)
      for (const state of LIVE_STATES) {
        states.set({ state }, (live.get(state) ?? 0) + (state === 'resolving' ? waiting : 0))
      }
    })
    const codecs = gauge(
      'haul_serve_codec_peers',
      'Receiving peers by the codec step their link is served with (codec auto).',
      ['step'],
    )
    this.#set.push(() => {
      for (const [step, n] of Object.entries(this.#stats?.serving.codecSteps ?? {})) codecs.set({ step }, n)
    })
  }

  #stats: EngineStats | undefined
  #live = new Map<TransferStatus, number>()

  /** Sets every metric from the engine as it is now: live transfers are read before any counter is set. */
  refresh(): void {
    const stats = this.#source.stats()
    this.#stats = stats
    this.#live = this.#source.tally.readLive()
    for (const [g, read] of this.#levels) g.set(read(stats))
    for (const set of this.#set) set()
  }

  /** The Prometheus text exposition, refreshed first. */
  async text(): Promise<string> {
    this.refresh()
    return this.registry.metrics()
  }
}
