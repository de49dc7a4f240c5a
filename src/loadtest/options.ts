import { formatSize } from '../chunking/params.ts'
import type { EngineOptions } from '../engine/config.ts'
import { ConfigInvalidError } from '../errors.ts'
import { ENGINE_NODE_FLAGS } from '../process-flags.ts'
import { type FaultEvent, type LoadTestFaultSpec, type LoadTestFaults, verifyFaultSpec } from './faults.ts'
import type { LoadTestMetrics } from './scrape.ts'

export type { LoadTestFaults } from './faults.ts'

/** How transfer sizes are drawn: uniform in bytes, or log-uniform (as many small files as large ones per decade). */
export type SizeDistribution = 'uniform' | 'log-uniform'

/**
 * Fault injection as a hook, for faults the built-in ones (`LoadTestFaultSpec`)
 * do not cover. `wrapTicket` may route a transfer through a proxy (`FaultProxy`
 * + `proxyTicket` in src/loadtest/fault-proxy.ts); `wireBytes` reports the
 * bytes those proxies forwarded, from which the report derives the bytes re-sent.
 */
export interface LoadTestOptions {
  /** Engine processes. @default 2 */
  processes?: number
  /** Transfers to run. @default 20 */
  transfers?: number
  /** Transfers in flight at once, across all processes. @default 8 */
  concurrency?: number
  /** Smallest transfer, bytes. @default 64 KiB */
  minBytes?: number
  /** Largest transfer, bytes. @default 4 MiB */
  maxBytes?: number
  /** @default 'log-uniform' */
  distribution?: SizeDistribution
  /** Distinct files generated (each published by one process); transfers draw from them. @default min(transfers, 16) */
  files?: number
  /** Who sends: every process ('mesh'), or process 0 to all others ('fan-out'). @default 'mesh' */
  topology?: 'mesh' | 'fan-out'
  /** The run stops by itself after this long, cancelling what is still running. @default 120_000 */
  durationMs?: number
  /** Sampling period for throughput and memory. @default 250 */
  sampleMs?: number
  /** Folder for generated files and downloads (created, removed after). @default a fresh folder in os.tmpdir() */
  workDir?: string
  /** Seed of the size and pairing draws. @default 1 */
  seed?: number
  /** Options of every engine process (JSON-serialisable). @default { workers: 1 } */
  engine?: EngineOptions
  /** Node flags of the engine processes. @default ENGINE_NODE_FLAGS (as the haul bin; src/process-flags.ts) */
  execArgv?: string[]
  /**
   * Faults: cut connections at random intervals, stall links, slow them (`LoadTestFaultSpec`,
   * through a fault proxy in front of each sender), or a hook of the caller's. @default none
   */
  faults?: LoadTestFaultSpec | LoadTestFaults
  /**
   * Check every download against the SHA-256 of the file the harness generated (hashed in the
   * receiving process, streaming, before the download is deleted); a mismatch fails the transfer
   * with `CONTENT_MISMATCH`. An independent check of the engine's own verification; it costs CPU
   * in the receivers, so benchmarks leave it off. @default false
   */
  checkDownloads?: boolean
  /**
   * Turn on every engine's Prometheus endpoint (`metrics.listen` 127.0.0.1, port 0, unless
   * `engine.metrics` says otherwise) and scrape it over HTTP this often, and once when the run
   * ends; the report's `metrics`. 0: no endpoint, no scraping. @default 1000
   */
  scrapeMs?: number
  /**
   * Periodic scrapes kept per process for the report's time series: past it, every other one is
   * dropped and the spacing doubles (peaks still come from every scrape). @default 120
   */
  scrapeSamples?: number
  /** Called every sample; the CLI prints `summaryLine(sample)` from it. */
  onSample?: (s: LoadSample) => void
  signal?: AbortSignal
}

export type ResolvedLoadTestOptions = Required<
  Omit<LoadTestOptions, 'faults' | 'onSample' | 'signal' | 'workDir'>
> &
  Pick<LoadTestOptions, 'faults' | 'onSample' | 'signal' | 'workDir'>

const KiB = 1024
const MiB = 1024 * KiB

export function resolveLoadTestOptions(o: LoadTestOptions = {}): ResolvedLoadTestOptions {
  const transfers = o.transfers ?? 20
  const r: ResolvedLoadTestOptions = {
    processes: o.processes ?? 2,
    transfers,
    concurrency: o.concurrency ?? 8,
    minBytes: o.minBytes ?? 64 * KiB,
    maxBytes: o.maxBytes ?? 4 * MiB,
    distribution: o.distribution ?? 'log-uniform',
    files: o.files ?? Math.min(transfers, 16),
    topology: o.topology ?? 'mesh',
    durationMs: o.durationMs ?? 120_000,
    sampleMs: o.sampleMs ?? 250,
    workDir: o.workDir,
    seed: o.seed ?? 1,
    engine: o.engine ?? { workers: 1 },
    execArgv: [...(o.execArgv ?? ENGINE_NODE_FLAGS)],
    faults: o.faults,
    checkDownloads: o.checkDownloads ?? false,
    scrapeMs: o.scrapeMs ?? 1_000,
    scrapeSamples: o.scrapeSamples ?? 120,
    onSample: o.onSample,
    signal: o.signal,
  }
  const int = (name: string, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new ConfigInvalidError(`${name} must be an integer >= ${min}, got ${v}`)
  }
  int('processes', r.processes, 2)
  int('transfers', r.transfers, 1)
  int('concurrency', r.concurrency, 1)
  int('minBytes', r.minBytes, 1)
  int('maxBytes', r.maxBytes, 1)
  if (r.maxBytes < r.minBytes) {
    throw new ConfigInvalidError(
      `maxBytes (${formatSize(r.maxBytes)}) must be at least minBytes (${formatSize(r.minBytes)})`,
    )
  }
  int('files', r.files, 1)
  int('durationMs', r.durationMs, 100)
  int('sampleMs', r.sampleMs, 10)
  int('scrapeSamples', r.scrapeSamples, 2)
  if (r.scrapeMs !== 0 && !(Number.isSafeInteger(r.scrapeMs) && r.scrapeMs >= 50))
    throw new ConfigInvalidError(`scrapeMs must be 0 (no scraping) or an integer >= 50, got ${r.scrapeMs}`)
  if (!['uniform', 'log-uniform'].includes(r.distribution))
    throw new ConfigInvalidError(`distribution must be uniform or log-uniform, got ${r.distribution}`)
  if (!['mesh', 'fan-out'].includes(r.topology))
    throw new ConfigInvalidError(`topology must be mesh or fan-out, got ${r.topology}`)
  if (r.faults !== undefined && !isFaultHook(r.faults)) verifyFaultSpec(r.faults)
  return r
}

export function isFaultHook(f: LoadTestFaultSpec | LoadTestFaults): f is LoadTestFaults {
  return typeof (f as LoadTestFaults).wrapTicket === 'function'
}

/** One point of the live view (also kept for the report's charts). */
export interface LoadSample {
  /** Seconds since the first transfer started. */
  t: number
  /** Verified bytes received so far, all transfers (finished and in flight). */
  bytesDone: number
  done: number
  /** Failed on their own (transfers the harness cancelled at the deadline are not counted). */
  failed: number
  active: number
  /** Resident set of each engine process, bytes (VmRSS). */
  rss: number[]
}

/** The failure code of a download that `checkDownloads` found different from the generated file. */
export const CONTENT_MISMATCH = 'CONTENT_MISMATCH'

export interface TransferRecord {
  index: number
  bytes: number
  from: number
  to: number
  /** Whole and verified (and, with `checkDownloads`, equal to the generated file). */
  ok: boolean
  /** Cancelled by the harness at its deadline: neither ok nor failed, counted as unfinished. */
  cancelled?: boolean
  /** From the request to the harness until the result (queueing in the engine included). */
  seconds: number
  /** When the transfer ended, seconds since the run started (the time axis of the charts). */
  endedAt: number
  /** Times the transfer went to `retrying` (counted by the fetch's `onRetry`), whatever its outcome. */
  retries: number
  /** A failure's code: a HaulError code, `CONTENT_MISMATCH`, or `Name: message` for anything else. */
  error?: string
}

export interface ProcessReport {
  index: number
  pid: number
  /** RSS once the engine was up and its files were published, bytes. */
  idleRss: number
  /** Largest VmHWM seen, bytes. */
  peakRss: number
}

export interface LoadTestResult {
  /** `faults`: the built-in spec, true for a hook of the caller's, false for none. */
  options: Omit<ResolvedLoadTestOptions, 'faults' | 'onSample' | 'signal'> & {
    faults: LoadTestFaultSpec | boolean
  }
  startedAt: string
  seconds: number
  stoppedBy: 'completed' | 'deadline' | 'signal'
  planned: number
  ok: number
  /** Failed on their own: every one is in `errors`. */
  failed: number
  /** Never finished: not started, or still running at the deadline (`cancelled` of them reported so). */
  unfinished: number
  /** Running at the deadline and cancelled by the harness; part of `unfinished`. */
  cancelled: number
  successRate: number
  bytesDelivered: number
  /** Verified bytes per second over the whole run. */
  goodput: number
  completion: { p50: number; p95: number; p99: number; max: number }
  processes: ProcessReport[]
  /** Sum of the records' retries. */
  retries: number
  /**
   * Bytes the fault proxies forwarded, both directions, all links (`LoadTestFaults.wireBytes`):
   * payload, requests, framing, descriptor pages and encryption. Null without a fault proxy.
   */
  wireBytes: number | null
  /**
   * `wireBytes` beyond the verified bytes receivers got (floored at 0): chunks lost in cuts and
   * fetched again, plus requests, framing, descriptor pages and encryption overhead (~0.1 % of
   * the bytes moved, what a run through a proxy without faults reports). Null without a fault proxy.
   */
  bytesResent: number | null
  /**
   * What the built-in faults injected: connections cut and stalls (all of them), and the
   * events in time order (at most `MAX_FAULT_EVENTS`; `eventsDropped` more). Null without built-in faults.
   */
  faultsInjected: { cuts: number; stalls: number; events: FaultEvent[]; eventsDropped: number } | null
  /** Failures by code (the harness's cancellations are not failures: see `cancelled`). */
  errors: Record<string, number>
  samples: LoadSample[]
  records: TransferRecord[]
  /** What the engines' metrics endpoints said (`scrapeMs`); null when not scraped. */
  metrics: LoadTestMetrics | null
}
