/**
 * The load-test harness: K engine processes, M transfers among them with a
 * size distribution and a concurrency, optional faults, a deadline. Memory is
 * sampled from /proc (VmRSS, VmHWM) of every process; throughput from the
 * bytes each receiver reports; the engines' own counters from their metrics
 * endpoints (scrape.ts).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AbortedError, InternalError } from '../errors.ts'
import { SERVE_EVENT_INTERVAL_MS } from '../serve/serve-events.ts'
import { makeFolders } from '../util/make-folders.ts'
import { mulberry32 } from '../util/random.ts'
import { type RunningFaults, startFaults } from './faults.ts'
import { type FileSpec, makeFiles } from './files.ts'
import {
  isFaultHook,
  type LoadSample,
  type LoadTestFaults,
  type LoadTestOptions,
  type LoadTestResult,
  type ProcessReport,
  type ResolvedLoadTestOptions,
  resolveLoadTestOptions,
  type TransferRecord,
} from './options.ts'
import type { FetchDone, FromPeer, ToPeer } from './peer.ts'
import { type LoadTestMetrics, MetricsScraper } from './scrape.ts'
import { percentile } from './stats.ts'

/** The child script is always the compiled one: the harness measures what embedders run. */
export const PEER_SCRIPT = fileURLToPath(new URL('../../dist/loadtest/peer.js', import.meta.url))

/** How long cancelled transfers and exiting processes get before they are killed. */
const GRACE_MS = 5_000

class Peer {
  readonly index: number
  readonly child: ChildProcess
  readonly exited: Promise<void>
  bytesDone = 0
  active = 0
  idleRss = 0
  peakRss = 0
  readonly #waiters = new Map<string, (m: FromPeer) => void>()
  onDone: ((d: FetchDone) => void) | undefined
  fatal: string | undefined

  constructor(index: number, execArgv: string[]) {
    this.index = index
    this.child = fork(PEER_SCRIPT, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv })
    this.exited = new Promise((r) => this.child.once('exit', () => r()))
    this.child.on('message', (m: FromPeer) => {
      if (m.type === 'tick') {
        this.bytesDone = m.bytesDone
        this.active = m.active
      } else if (m.type === 'done') for (const d of m.results) this.onDone?.(d)
      else if (m.type === 'fatal') this.fatal = m.error
      const key = m.type === 'published' ? `published:${m.id}` : m.type
      const w = this.#waiters.get(key)
      if (w !== undefined) {
        this.#waiters.delete(key)
        w(m)
      }
    })
  }

  send(m: ToPeer): void {
    if (this.child.connected) this.child.send(m)
  }

  next<T extends FromPeer>(key: string): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#waiters.set(key, (m) => resolve(m as T))
      void this.exited.then(() =>
        reject(new Error(`load-test process ${this.index} exited: ${this.fatal ?? 'no reason given'}`)),
      )
    })
  }

  /** RSS and VmHWM from /proc; zeros once the process is gone. */
  memory(): { rss: number; hwm: number } {
    try {
      const s = readFileSync(`/proc/${this.child.pid}/status`, 'utf8')
      const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024
      const m = { rss: kb('VmRSS'), hwm: kb('VmHWM') }
      this.peakRss = Math.max(this.peakRss, m.hwm)
      return m
    } catch {
      return { rss: 0, hwm: 0 }
    }
  }

  async stop(): Promise<void> {
    this.send({ type: 'exit' })
    const timer = setTimeout(() => this.child.kill('SIGKILL'), GRACE_MS)
    await this.exited
    clearTimeout(timer)
  }
}

interface Planned {
  index: number
  file: number
  to: number
}

/** Runs a load test; never throws for failed transfers (they are in the result), only for a broken harness. */
export async function runLoadTest(opts: LoadTestOptions = {}): Promise<LoadTestResult> {
  const o = resolveLoadTestOptions(opts)
  o.signal?.throwIfAborted()
  const work = o.workDir ?? (await mkdtemp(join(tmpdir(), 'haul-loadtest-')))
  // Not Node's recursive mkdir, which spins for ever under /proc and /sys.
  await makeFolders(join(work, 'out'))
  const peers: Peer[] = []
  const builtin: RunningFaults | undefined =
    o.faults === undefined || isFaultHook(o.faults) ? undefined : startFaults(o.faults, o.seed)
  const faults = builtin ?? (o.faults as LoadTestFaults | undefined)
  try {
    for (let i = 0; i < o.processes; i++) peers.push(new Peer(i, o.execArgv))
    const scrape = o.scrapeMs > 0
    // Every process is on this machine: its endpoint on loopback, on a port the system picks.
    const engine = scrape ? { ...o.engine, metrics: o.engine.metrics ?? { listen: '127.0.0.1:0' } } : o.engine
    const ready = await Promise.all(
      peers.map((p) => {
        const ready = p.next<Extract<FromPeer, { type: 'ready' }>>('ready')
        p.send({ type: 'init', engine, tickMs: Math.min(o.sampleMs, 250) })
        return ready
      }),
    )
    const endpoints = scrape ? ready.map((r) => r.metrics) : undefined
    if (endpoints?.includes(undefined))
      throw new InternalError('a load-test process started without the metrics endpoint it was asked for')
    const random = mulberry32(o.seed)
    const files = await makeFiles(o, work, random)
    const tickets = await publishAll(peers, files, faults)
    for (const p of peers) p.idleRss = p.memory().rss
    return await drive(
      o,
      peers,
      files,
      tickets,
      random,
      work,
      faults,
      builtin,
      endpoints as string[] | undefined,
    )
  } finally {
    await Promise.all(peers.map((p) => p.stop()))
    await builtin?.close()
    if (o.workDir === undefined) await rm(work, { recursive: true, force: true })
    else await rm(join(work, 'out'), { recursive: true, force: true })
  }
}

async function publishAll(
  peers: Peer[],
  files: FileSpec[],
  faults: LoadTestFaults | undefined,
): Promise<string[]> {
  const tickets: string[] = []
  // One file at a time per process: publishing hashes the file in that process's workers.
  for (const [i, f] of files.entries()) {
    const p = peers[f.owner]!
    const got = p.next<Extract<FromPeer, { type: 'published' }>>(`published:${i}`)
    p.send({ type: 'publish', id: i, path: f.path })
    const ticket = (await got).ticket
    tickets.push(faults === undefined ? ticket : await faults.wrapTicket(ticket, f.owner))
  }
  return tickets
}

async function drive(
  o: ResolvedLoadTestOptions,
  peers: Peer[],
  files: FileSpec[],
  tickets: string[],
  random: () => number,
  work: string,
  faults: LoadTestFaults | undefined,
  builtin: RunningFaults | undefined,
  endpoints: string[] | undefined,
): Promise<LoadTestResult> {
  const plan: Planned[] = []
  for (let i = 0; i < o.transfers; i++) {
    const file = Math.floor(random() * files.length)
    const owner = files[file]!.owner
    let to = owner
    while (to === owner) to = Math.floor(random() * o.processes)
    plan.push({ index: i, file, to })
  }
  const records: TransferRecord[] = []
  let okCount = 0
  let failedCount = 0
  // Verified bytes as each fetch ended: exact where the last tick may lag behind the last fetch.
  let reportedBytes = 0
  const startedAt = new Map<number, number>()
  const samples: LoadSample[] = []
  const t0 = performance.now()
  const startedIso = new Date().toISOString()
  builtin?.begin(t0)
  const scraper =
    endpoints === undefined ? undefined : new MetricsScraper(endpoints, o.scrapeMs, o.scrapeSamples, t0)
  let next = 0
  let inFlight = 0
  let stoppedBy: LoadTestResult['stoppedBy'] = 'completed'
  let finish: (() => void) | undefined
  const finished = new Promise<void>((r) => (finish = r))
  let stopping = false

  const launch = (): void => {
    while (!stopping && inFlight < o.concurrency && next < plan.length) {
      const t = plan[next++]!
      inFlight++
      startedAt.set(t.index, performance.now())
      peers[t.to]!.send({
        type: 'fetch',
        id: t.index,
        ticket: tickets[t.file]!,
        dest: join(work, 'out', `t${t.index}.bin`),
        ...(o.checkDownloads ? { sha256: files[t.file]!.sha256 } : {}),
      })
    }
    if (inFlight === 0 && (next >= plan.length || stopping)) finish?.()
  }
  for (const p of peers) {
    p.onDone = (m) => {
      const t = plan[m.id]!
      inFlight--
      reportedBytes += m.bytes
      if (m.ok) okCount++
      else if (m.cancelled !== true) failedCount++
      // Both clocks are this host's wall clock; the peer stamps the moment the fetch ended.
      const ended = m.at - performance.timeOrigin
      records.push({
        index: m.id,
        bytes: files[t.file]!.bytes,
        from: files[t.file]!.owner,
        to: t.to,
        ok: m.ok,
        ...(m.cancelled === true ? { cancelled: true } : {}),
        seconds: Math.max(0, ended - startedAt.get(m.id)!) / 1000,
        endedAt: Math.max(0, ended - t0) / 1000,
        retries: m.retries,
        ...(m.error === undefined ? {} : { error: m.error }),
      })
      launch()
    }
  }
  const sample = (): void => {
    const s: LoadSample = {
      t: (performance.now() - t0) / 1000,
      bytesDone: peers.reduce((sum, p) => sum + p.bytesDone, 0),
      done: okCount,
      failed: failedCount,
      active: inFlight,
      rss: peers.map((p) => p.memory().rss),
    }
    samples.push(s)
    o.onSample?.(s)
  }
  let stopped: (() => void) | undefined
  const graceOver = new Promise<void>((r) => (stopped = r)).then(() => sleep(GRACE_MS))
  const stop = (why: LoadTestResult['stoppedBy']): void => {
    if (stopping) return
    stopping = true
    stoppedBy = why
    stopped?.()
    for (const p of peers) p.send({ type: 'cancel-all' })
    if (inFlight === 0) finish?.()
  }
  const timer = setInterval(sample, o.sampleMs)
  const deadline = setTimeout(() => stop('deadline'), o.durationMs)
  const onAbort = (): void => stop('signal')
  o.signal?.addEventListener('abort', onAbort, { once: true })
  const crashed = Promise.race(peers.map((p) => p.exited.then(() => p))).then((p) => {
    throw new Error(`load-test process ${p.index} died: ${p.fatal ?? 'no reason given'}`)
  })
  try {
    sample()
    scraper?.start()
    launch()
    // Cancelled transfers report back; what has not within the grace period counts as unfinished.
    await Promise.race([finished, crashed, graceOver])
    sample()
  } finally {
    clearInterval(timer)
    scraper?.stop()
    clearTimeout(deadline)
    o.signal?.removeEventListener('abort', onAbort)
    void crashed.catch(() => {})
  }
  for (const p of peers) p.onDone = undefined
  if ((stoppedBy as LoadTestResult['stoppedBy']) === 'signal')
    throw new AbortedError('the load test was cancelled')
  const seconds = (performance.now() - t0) / 1000
  let metrics: LoadTestMetrics | null = null
  if (scraper !== undefined) {
    // A sender reports the chunks it served at most SERVE_EVENT_INTERVAL_MS after sending them.
    await new Promise((r) => setTimeout(r, SERVE_EVENT_INTERVAL_MS + 100))
    metrics = await scraper.finish()
  }
  return summarize(o, peers, records, samples, startedIso, seconds, stoppedBy, metrics, {
    wire: faults?.wireBytes?.(),
    verified: Math.max(reportedBytes, samples.at(-1)!.bytesDone),
    injected:
      builtin === undefined ? null : { cuts: builtin.cuts(), stalls: builtin.stalls(), ...builtin.events() },
  })
}

function summarize(
  o: ResolvedLoadTestOptions,
  peers: Peer[],
  records: TransferRecord[],
  samples: LoadSample[],
  startedAt: string,
  seconds: number,
  stoppedBy: LoadTestResult['stoppedBy'],
  metrics: LoadTestMetrics | null,
  fault: { wire: number | undefined; verified: number; injected: LoadTestResult['faultsInjected'] },
): LoadTestResult {
  const ok = records.filter((r) => r.ok)
  const failed = records.filter((r) => !r.ok && r.cancelled !== true)
  const times = ok.map((r) => r.seconds).sort((a, b) => a - b)
  const bytesDelivered = ok.reduce((s, r) => s + r.bytes, 0)
  const errors: Record<string, number> = {}
  for (const r of failed) errors[r.error ?? 'unknown'] = (errors[r.error ?? 'unknown'] ?? 0) + 1
  const wire = fault.wire
  const processes: ProcessReport[] = peers.map((p) => ({
    index: p.index,
    pid: p.child.pid ?? 0,
    idleRss: p.idleRss,
    peakRss: Math.max(p.peakRss, p.memory().hwm),
  }))
  const { faults, onSample: _s, signal: _g, ...rest } = o
  return {
    options: { ...rest, faults: faults === undefined ? false : isFaultHook(faults) ? true : { ...faults } },
    startedAt,
    seconds,
    stoppedBy,
    planned: o.transfers,
    ok: ok.length,
    failed: failed.length,
    unfinished: o.transfers - ok.length - failed.length,
    cancelled: records.length - ok.length - failed.length,
    successRate: ok.length / o.transfers,
    bytesDelivered,
    goodput: seconds > 0 ? bytesDelivered / seconds : 0,
    completion: {
      p50: percentile(times, 0.5),
      p95: percentile(times, 0.95),
      p99: percentile(times, 0.99),
      max: times.at(-1) ?? 0,
    },
    processes,
    retries: records.reduce((s, r) => s + r.retries, 0),
    wireBytes: wire ?? null,
    bytesResent: wire === undefined ? null : Math.max(0, wire - fault.verified),
    faultsInjected: fault.injected,
    errors,
    samples,
    records: records.sort((a, b) => a.index - b.index),
    metrics,
  }
}

/** Does not keep the process alive: a run that ended early must not wait it out. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref())
}
