import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  asUsageError,
  checkEngineOptions,
  type FlagOfOption,
  inFlagTerms,
  MIB_UNIT,
  refuseEmptyValues,
} from '../cli/args.ts'
import { defaultText } from '../engine/config/docs.ts'
import { DestinationInvalidError, errorClassOf, InvalidArgumentError } from '../errors.ts'
import { fsError } from '../storage/fs-errors.ts'
import { makeFolders } from '../util/make-folders.ts'
import type { LoadTestFaultSpec } from './faults.ts'
import { metricsLines } from './metrics-summary.ts'
import {
  type LoadSample,
  type LoadTestOptions,
  resolveLoadTestOptions,
  type SizeDistribution,
} from './options.ts'
import { summaryLine, writeReport } from './report.ts'
import { runLoadTest } from './run.ts'
import { fmtBytes } from './stats.ts'

const USAGE = `haul loadtest — K engine processes, M transfers among them, a report

Usage:
  haul loadtest [options]

Options:
  --processes K        engine processes (default 2)
  --transfers M        transfers to run (default 20)
  --concurrency C      transfers in flight at once (default 8)
  --min SIZE           smallest transfer, e.g. 64k, 1m (default 64k)
  --max SIZE           largest transfer (default 4m)
  --distribution D     uniform | log-uniform (default log-uniform)
  --files N            distinct files generated (default min(M, 16))
  --topology T         mesh | fan-out (process 0 sends to all) (default mesh)
  --duration SECONDS   stop by itself after this long (default 120)
  --memory MiB         memory budget of each engine (default ${defaultText('memoryBudget')})
  --gc-assist MiB      collect garbage whenever ArrayBuffer memory grew this much (engine gcAssistBytes; default ${defaultText('gcAssistBytes')})
  --workers N          worker threads per engine (default 1)
  --seed N             seed of the size and pairing draws (default 1)
  --report DIR         where loadtest.json and loadtest.html go, made before the run (default .)
  --check              hash every download (SHA-256, in the receiving process) and compare it
                       with the generated file; a difference fails the transfer with
                       CONTENT_MISMATCH (costs receiver CPU: off for benchmarks)
  --scrape-every MS    scrape every engine's Prometheus endpoint (on 127.0.0.1, any port)
                       this often and once at the end; 0: no endpoint (default 1000)
  --scrape-samples N   scrapes kept per process for loadtest.json's time series; past it,
                       every other one is dropped (default 120)
  --json               print the result as JSON instead of the summary

Faults (through a fault proxy in front of each sender; the report adds the bytes on the
wire, both directions, and bytes re-sent: wire beyond the verified bytes delivered):
  --cut-every MIN-MAX  cut each connection after MIN–MAX ms, e.g. 500-3000
  --cut-mode M         reset | close (a FIN mid-stream) (default reset)
  --stall-every MS     every MS ms, stop forwarding on every link...
  --stall-for MS       ...for this long (default 2000)
  --link-rate SIZE     bytes per second per sender and direction, e.g. 50m
`

const FLAGS = {
  processes: { type: 'string' },
  transfers: { type: 'string' },
  concurrency: { type: 'string' },
  min: { type: 'string' },
  max: { type: 'string' },
  distribution: { type: 'string' },
  files: { type: 'string' },
  topology: { type: 'string' },
  duration: { type: 'string' },
  memory: { type: 'string' },
  'gc-assist': { type: 'string' },
  workers: { type: 'string' },
  seed: { type: 'string' },
  'cut-every': { type: 'string' },
  'cut-mode': { type: 'string' },
  'stall-every': { type: 'string' },
  'stall-for': { type: 'string' },
  'link-rate': { type: 'string' },
  'scrape-every': { type: 'string' },
  'scrape-samples': { type: 'string' },
  report: { type: 'string' },
  check: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const

/** The option each flag sets (LoadTestOptions, and the engine's), to name the flag when its value is refused. */
const FLAG_OF_OPTION: readonly FlagOfOption[] = [
  { option: 'processes', flag: '--processes' },
  { option: 'transfers', flag: '--transfers' },
  { option: 'concurrency', flag: '--concurrency' },
  { option: 'minBytes', flag: '--min' },
  { option: 'maxBytes', flag: '--max' },
  { option: 'distribution', flag: '--distribution' },
  { option: 'files', flag: '--files' },
  { option: 'topology', flag: '--topology' },
  { option: 'durationMs', flag: '--duration', unit: { per: 1000, name: 's' } },
  { option: 'scrapeMs', flag: '--scrape-every' },
  { option: 'scrapeSamples', flag: '--scrape-samples' },
  { option: 'faults.stallEveryMs', flag: '--stall-every' },
  { option: 'faults.stallMs', flag: '--stall-for' },
  { option: 'faults.rateBytesPerSec', flag: '--link-rate' },
  { option: 'faults.cutEveryMs', flag: '--cut-every' },
  { option: 'memoryBudget', flag: '--memory', unit: MIB_UNIT },
  { option: 'gcAssistBytes', flag: '--gc-assist', unit: MIB_UNIT },
  { option: 'workers', flag: '--workers' },
]

function parseLoadTestArgs(argv: string[]) {
  try {
    return refuseEmptyValues(parseArgs({ args: argv, options: FLAGS }), FLAGS, 'haul loadtest --help')
  } catch (err) {
    throw asUsageError(err, 'haul loadtest --help')
  }
}

export async function runLoadTestCli(argv: string[]): Promise<number> {
  const { values } = parseLoadTestArgs(argv)
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`--${name} takes a positive number, got "${v}"`)
    return n
  }
  const transfers = num('transfers', values.transfers) ?? 20
  const faults = faultSpec(values, num)
  const abort = new AbortController()
  const opts: LoadTestOptions = {
    ...def('processes', num('processes', values.processes)),
    transfers,
    ...def('concurrency', num('concurrency', values.concurrency)),
    ...def('minBytes', size('min', values.min)),
    ...def('maxBytes', size('max', values.max)),
    ...def('distribution', values.distribution as SizeDistribution | undefined),
    ...def('files', num('files', values.files)),
    ...def('topology', values.topology as 'mesh' | 'fan-out' | undefined),
    ...def('durationMs', mul(num('duration', values.duration), 1000)),
    ...def('seed', num('seed', values.seed)),
    // 0 turns scraping off, which `num` (positive numbers) refuses.
    ...def(
      'scrapeMs',
      values['scrape-every']?.trim() === '0' ? 0 : num('scrape-every', values['scrape-every']),
    ),
    ...def('scrapeSamples', num('scrape-samples', values['scrape-samples'])),
    engine: {
      workers: num('workers', values.workers) ?? 1,
      ...def('memoryBudget', mul(num('memory', values.memory), 1024 * 1024)),
      ...def('gcAssistBytes', mul(num('gc-assist', values['gc-assist']), 1024 * 1024)),
    },
    ...def('faults', faults),
    checkDownloads: values.check,
    signal: abort.signal,
  }
  // The options checked as the run will check them, before anything starts: a value refused is
  // a usage error naming its flag.
  try {
    resolveLoadTestOptions(opts)
  } catch (err) {
    throw inFlagTerms(err, FLAG_OF_OPTION)
  }
  checkEngineOptions(opts.engine ?? {}, FLAG_OF_OPTION)
  const dir = await reportFolder(values.report ?? '.')
  const onSignal = (): void => abort.abort()
  process.once('SIGINT', onSignal)
  let prev: LoadSample | undefined
  const tty = process.stderr.isTTY === true
  try {
    const r = await runLoadTest({
      ...opts,
      onSample: (s) => {
        // A live line: rewritten in place on a terminal, one line a second otherwise.
        if (tty) process.stderr.write(`\r\x1b[K${summaryLine(s, transfers, prev)}`)
        else if (prev === undefined || Math.floor(s.t) > Math.floor(prev.t))
          process.stderr.write(`${summaryLine(s, transfers, prev)}\n`)
        prev = s
      },
    })
    if (tty) process.stderr.write('\n')
    const files = await writeReport(r, dir).catch((err: unknown) => {
      throw reportError(err, dir)
    })
    if (values.json) {
      // The per-sample, per-transfer and per-fault lists are in loadtest.json; stdout gets the figures.
      const faultsInjected = r.faultsInjected === null ? null : { ...r.faultsInjected, events: undefined }
      const metrics = r.metrics === null ? null : { ...r.metrics, processes: undefined }
      process.stdout.write(
        `${JSON.stringify({ ...r, samples: undefined, records: undefined, faultsInjected, metrics, ...files })}\n`,
      )
    } else {
      const c = r.completion
      process.stdout.write(
        [
          `topology    ${r.options.topology}, ${r.options.processes} processes${r.options.checkDownloads ? ', downloads checked (SHA-256)' : ''}`,
          `success     ${(r.successRate * 100).toFixed(1)} % (${r.ok} ok, ${r.failed} failed, ${r.unfinished} unfinished, ${r.cancelled} of them cancelled at the deadline; stopped: ${r.stoppedBy})`,
          `goodput     ${fmtBytes(r.goodput)}/s (${fmtBytes(r.bytesDelivered)} in ${r.seconds.toFixed(1)} s)`,
          `completion  p50 ${c.p50.toFixed(2)} s  p95 ${c.p95.toFixed(2)} s  p99 ${c.p99.toFixed(2)} s`,
          `peak RSS    ${r.processes.map((p) => `${p.index}: ${fmtBytes(p.peakRss)}`).join('  ')}`,
          `re-sent     ${r.bytesResent === null || r.wireBytes === null ? 'not measured (no fault proxy)' : `${fmtBytes(r.bytesResent)} (${fmtBytes(r.wireBytes)} on the wire, both directions)`}; retries ${r.retries}${r.faultsInjected === null ? '' : `; faults: ${r.faultsInjected.cuts} cuts, ${r.faultsInjected.stalls} stalls`}`,
          ...(Object.keys(r.errors).length === 0
            ? []
            : [
                `errors      ${Object.entries(r.errors)
                  .map(([k, n]) => `${k} × ${n}`)
                  .join(', ')}`,
              ]),
          ...(r.metrics === null
            ? []
            : [
                `metrics     ${metricsLines(r.metrics)
                  .map(([, k, v]) => `${k}: ${v}`)
                  .join('\n            ')}`,
              ]),
          `report      ${files.html}\n            ${files.json}`,
          '',
        ].join('\n'),
      )
    }
    return r.successRate === 1 ? 0 : 1
  } finally {
    process.off('SIGINT', onSignal)
  }
}

function faultSpec(
  values: Record<string, string | boolean | undefined>,
  num: (name: string, v: string | undefined) => number | undefined,
): LoadTestFaultSpec | undefined {
  const spec: LoadTestFaultSpec = {}
  const cut = values['cut-every'] as string | undefined
  if (cut !== undefined) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(cut.trim())
    if (m === null)
      throw new InvalidArgumentError(`--cut-every takes MIN-MAX milliseconds, e.g. 500-3000, got "${cut}"`)
    spec.cutEveryMs = [Number(m[1]), Number(m[2] ?? m[1])]
  }
  const mode = values['cut-mode'] as string | undefined
  if (mode !== undefined) {
    if (mode !== 'reset' && mode !== 'close')
      throw new InvalidArgumentError(`--cut-mode takes reset or close, got "${mode}"`)
    spec.cutMode = mode
  }
  const every = num('stall-every', values['stall-every'] as string | undefined)
  if (every !== undefined) spec.stallEveryMs = Math.round(every)
  const stallFor = num('stall-for', values['stall-for'] as string | undefined)
  if (stallFor !== undefined) spec.stallMs = Math.round(stallFor)
  const rate = size('link-rate', values['link-rate'] as string | undefined)
  if (rate !== undefined) spec.rateBytesPerSec = rate
  return Object.keys(spec).length === 0 ? undefined : spec
}

function def<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V }
}

function mul(v: number | undefined, by: number): number | undefined {
  return v === undefined ? undefined : Math.round(v * by)
}

function size(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const m = /^(\d+(?:\.\d+)?)([kmg]?)i?b?$/i.exec(v.trim())
  if (m === null) throw new InvalidArgumentError(`--${name} takes a size like 64k, 16m or 1g, got "${v}"`)
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
  return Math.round(Number(m[1]) * unit)
}

/**
 * The report's folder, made now (`mkdir -p`), so a path that cannot be one fails before the run
 * rather than after it. makeFolders, not Node's recursive mkdir: that one spins for ever under
 * /proc and /sys.
 */
async function reportFolder(path: string): Promise<string> {
  const dir = resolve(path)
  await makeFolders(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') {
      throw new DestinationInvalidError(
        `--report ${path} is a file, not a folder: give a folder for loadtest.json and loadtest.html`,
        { cause: err },
      )
    }
    throw reportError(err, dir)
  })
  return dir
}

/** A failure to make or write the report's folder, typed (src/storage/fs-errors.ts) and naming --report. */
function reportError(err: unknown, dir: string): Error {
  const typed = fsError(err, dir)
  return new (errorClassOf(typed.code))(`--report: ${typed.message}`, { cause: err })
}
