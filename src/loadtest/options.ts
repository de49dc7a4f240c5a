import type { EngineOptions } from '../engine/config.ts'
import { ConfigInvalidError } from '../errors.ts'
import { ENGINE_NODE_FLAGS } from '../process-flags.ts'
import { type LoadTestFaultSpec, verifyFaultSpec } from './faults.ts'

/** How transfer sizes are drawn: uniform in bytes, or log-uniform (as many small files as large ones per decade). */
export type SizeDistribution = 'uniform' | 'log-uniform'

/**
 * Fault injection as a hook, for faults the built-in ones (`LoadTestFaultSpec`)
 * do not cover. `wrapTicket` may route a transfer through a proxy (`FaultProxy`
 * + `proxyTicket` in src/loadtest/fault-proxy.ts); `wireBytesDown` reports the
 * bytes that proxy forwarded to receivers, from which the report derives the
 * bytes re-sent.
 */
export interface LoadTestFaults {
  /** Called once per sender process with its ticket-ready addresses; returns the ticket receivers should use. */
  wrapTicket: (ticket: string, sender: number) => string | Promise<string>
  /** Bytes delivered to receivers over the faulty links so far (payload + framing). */
  wireBytesDown?: () => number
}

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
  int('maxBytes', r.maxBytes, r.minBytes)
  int('files', r.files, 1)
  int('durationMs', r.durationMs, 100)
  int('sampleMs', r.sampleMs, 10)
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
  failed: number
  active: number
  /** Resident set of each engine process, bytes (VmRSS). */
  rss: number[]
}

export interface TransferRecord {
  index: number
  bytes: number
  from: number
  to: number
  ok: boolean
  /** From the request to the harness until the result (queueing in the engine included). */
  seconds: number
  retries: number
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
  failed: number
  /** Never finished: still queued or running at the deadline. */
  unfinished: number
  successRate: number
  bytesDelivered: number
  /** Verified bytes per second over the whole run. */
  goodput: number
  completion: { p50: number; p95: number; p99: number; max: number }
  processes: ProcessReport[]
  retries: number
  /**
   * Bytes the senders put on the faulty links beyond the verified bytes receivers kept
   * (chunks lost in cuts and fetched again, plus framing, descriptor pages and
   * encryption overhead, ~0.1 % without faults). Only measured through a fault
   * proxy (`faults`), else null.
   */
  bytesResent: number | null
  /** Connections the built-in faults cut, and stalls they injected; null without built-in faults. */
  faultsInjected: { cuts: number; stalls: number } | null
  errors: Record<string, number>
  samples: LoadSample[]
  records: TransferRecord[]
}
