/**
 * Scrapes the Prometheus endpoint of every engine process of a load test over HTTP
 * (`GET /metrics`), every `scrapeMs` during the run and once at its end, and keeps the series
 * the report shows. Memory stays bounded however long the run: at most `scrapeSamples` samples
 * per process (past that, every other one is dropped and the spacing doubles), while the peak
 * of each level is taken from every scrape, kept or not.
 */
import { keyName, parseExposition, seriesKey } from './prom-text.ts'

/** Counters kept, with their labels (all bounded: error codes, outcomes). */
export const SCRAPED_COUNTERS = [
  'haul_received_bytes_total',
  'haul_kept_bytes_total',
  'haul_sent_bytes_total',
  'haul_sent_wire_bytes_total',
  'haul_transfers_total',
  'haul_transfer_failures_total',
  'haul_transfer_retries_total',
  'haul_chunks_verification_failed_total',
  'haul_duplicate_bytes_total',
  'haul_serve_session_failures_total',
] as const

/** Levels kept: transfers by state, budget in use, queue depths, connections. */
export const SCRAPED_GAUGES = [
  'haul_transfers',
  'haul_transfers_active',
  'haul_transfers_queued',
  'haul_memory_budget_bytes',
  'haul_memory_used_bytes',
  'haul_memory_work_bytes',
  'haul_memory_waiting',
  'haul_memory_fetch_waiting',
  'haul_worker_tasks_in_flight',
  'haul_worker_tasks_queued',
  'haul_connections',
  'haul_streams_open',
] as const

const KEPT = new Set<string>([...SCRAPED_COUNTERS, ...SCRAPED_GAUGES])
const GAUGES = new Set<string>(SCRAPED_GAUGES)

/** A scrape that has not answered in this long counts as failed. */
const SCRAPE_TIMEOUT_MS = 5_000

/** The kept series of one scrape, by `name{labels}` (labels sorted: `seriesKey`). */
export type SeriesValues = Record<string, number>

export interface MetricsSample {
  /** Seconds since the run started (the time axis of `samples`). */
  t: number
  values: SeriesValues
}

export interface ProcessMetrics {
  index: number
  /** Where its endpoint listened (`host:port`). */
  address: string
  /** The scrape after the run ended (every transfer reported or given up on); null if it failed. */
  final: SeriesValues | null
  /** Highest value of each level (`SCRAPED_GAUGES`) over every scrape, final included. */
  peaks: SeriesValues
  /** The periodic scrapes kept, in time order: at most `scrapeSamples`, `everyMs` apart. */
  samples: MetricsSample[]
  /** Spacing of the kept samples: `scrapeMs`, doubled each time they were thinned. */
  everyMs: number
}

export interface LoadTestMetrics {
  /** The scraping period asked for (`scrapeMs`) and the cap on samples kept (`scrapeSamples`). */
  scrapeMs: number
  maxSamples: number
  /** Scrapes sent (all processes, final ones included), and those that failed or timed out. */
  scrapes: number
  failedScrapes: number
  /** Each series' final value summed over the processes. */
  totals: SeriesValues
  /** Each level's highest value in any one process. */
  peaks: SeriesValues
  processes: ProcessMetrics[]
}

/** The kept series of an exposition. */
export function keptSeries(text: string): SeriesValues {
  const out: SeriesValues = {}
  for (const s of parseExposition(text)) if (KEPT.has(s.name)) out[seriesKey(s.name, s.labels)] = s.value
  return out
}

/**
 * Samples kept for one process: each new one is kept when its scrape number is a multiple of
 * the current stride; when more than `max` are kept, those at odd multiples go and the stride
 * doubles, so the kept ones stay evenly spaced and never exceed `max`.
 */
export class Downsampled<T> {
  readonly #max: number
  #stride = 1
  #n = 0
  #kept: Array<{ n: number; value: T }> = []

  constructor(max: number) {
    this.#max = Math.max(2, max)
  }

  push(value: T): void {
    const n = this.#n++
    if (n % this.#stride !== 0) return
    this.#kept.push({ n, value })
    if (this.#kept.length <= this.#max) return
    this.#stride *= 2
    this.#kept = this.#kept.filter((k) => k.n % this.#stride === 0)
  }

  get stride(): number {
    return this.#stride
  }

  values(): T[] {
    return this.#kept.map((k) => k.value)
  }
}

class Target {
  readonly samples: Downsampled<MetricsSample>
  readonly peaks: SeriesValues = {}
  final: SeriesValues | null = null

  readonly index: number
  readonly address: string

  constructor(index: number, address: string, max: number) {
    this.index = index
    this.address = address
    this.samples = new Downsampled(max)
  }

  seen(values: SeriesValues): void {
    for (const [k, v] of Object.entries(values))
      if (GAUGES.has(keyName(k)) && !(v <= (this.peaks[k] ?? Number.NEGATIVE_INFINITY))) this.peaks[k] = v
  }
}

export class MetricsScraper {
  readonly #targets: Target[]
  readonly #everyMs: number
  readonly #max: number
  readonly #t0: number
  #timer: NodeJS.Timeout | undefined
  #round: Promise<void> | undefined
  #scrapes = 0
  #failed = 0

  /** `addresses[i]`: process i's endpoint; `t0`: the run's start (performance.now()). */
  constructor(addresses: string[], everyMs: number, maxSamples: number, t0: number) {
    this.#targets = addresses.map((a, i) => new Target(i, a, maxSamples))
    this.#everyMs = everyMs
    this.#max = maxSamples
    this.#t0 = t0
  }

  /** Scrapes now and every `everyMs`; a round still running when the next is due is not doubled up. */
  start(): void {
    const tick = (): void => {
      this.#round ??= this.#roundOf(false).finally(() => (this.#round = undefined))
    }
    tick()
    this.#timer = setInterval(tick, this.#everyMs)
  }

  /** Stops the periodic scrapes (a round under way still ends). */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** Stops the periodic scrapes, scrapes every process once more, and returns what was kept. */
  async finish(): Promise<LoadTestMetrics> {
    clearInterval(this.#timer)
    await this.#round
    await this.#roundOf(true)
    const totals: SeriesValues = {}
    const peaks: SeriesValues = {}
    for (const t of this.#targets) {
      for (const [k, v] of Object.entries(t.final ?? {})) totals[k] = (totals[k] ?? 0) + v
      for (const [k, v] of Object.entries(t.peaks)) peaks[k] = Math.max(peaks[k] ?? v, v)
    }
    return {
      scrapeMs: this.#everyMs,
      maxSamples: this.#max,
      scrapes: this.#scrapes,
      failedScrapes: this.#failed,
      totals,
      peaks,
      processes: this.#targets.map((t) => ({
        index: t.index,
        address: t.address,
        final: t.final,
        peaks: t.peaks,
        samples: t.samples.values(),
        everyMs: this.#everyMs * t.samples.stride,
      })),
    }
  }

  async #roundOf(final: boolean): Promise<void> {
    await Promise.all(
      this.#targets.map(async (target) => {
        const t = (performance.now() - this.#t0) / 1000
        this.#scrapes++
        const values = await scrapeOnce(target.address).catch(() => undefined)
        if (values === undefined) {
          this.#failed++
          return
        }
        target.seen(values)
        if (final) target.final = values
        else target.samples.push({ t, values })
      }),
    )
  }
}

/**
 * One `GET /metrics`: the kept series; undefined for another status than 200 (a 503 when
 * the endpoint is answering too many scrapes). Rejects on a timeout or unreadable text.
 */
export async function scrapeOnce(address: string): Promise<SeriesValues | undefined> {
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
  const text = await res.text()
  return res.status === 200 ? keptSeries(text) : undefined
}
