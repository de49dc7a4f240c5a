import { parseArgs } from 'node:util'
import { formatSize, maxChunkSize, parseChunking } from '../chunking/params.ts'
import { type EngineOptions, resolveEngineConfig } from '../engine/config.ts'
import { ConfigInvalidError, InvalidArgumentError } from '../errors.ts'
import { PRIORITIES, type Priority } from '../resources/fair-queue.ts'
import type { ChunkingParams } from '../types.ts'

/**
 * What a command ends with: 0 done, 1 failed, 2 usage error, 130 interrupted, 141 stopped
 * because its output (stdout or stderr) was closed: 128 + SIGPIPE, what a shell reports for a
 * program whose pipe's reader went away.
 */
export const EXIT = { done: 0, failed: 1, usage: 2, interrupted: 130, outputClosed: 141 } as const

export const COMMANDS = ['send', 'get', 'seed', 'index', 'relay'] as const
export type Command = (typeof COMMANDS)[number]

const ALL: readonly Command[] = COMMANDS
/** The commands that run an engine. */
const ENGINE: readonly Command[] = ['send', 'get', 'seed', 'index']
const SERVING: readonly Command[] = ['send', 'seed']
const NETWORKED: readonly Command[] = ['send', 'get', 'seed', 'relay']

/** Every flag, with the commands that take it: any other command refuses it as a usage error. */
const FLAGS = {
  out: { type: 'string', short: 'o', for: ['get', 'index'] },
  chunking: { type: 'string', for: ['send', 'seed', 'index'] },
  listen: { type: 'string', multiple: true, for: NETWORKED },
  'data-dir': { type: 'string', for: [...SERVING, 'get', 'index', 'relay'] },
  relay: { type: 'string', multiple: true, for: SERVING },
  'max-reservations': { type: 'string', for: ['relay'] },
  'max-circuits': { type: 'string', for: ['relay'] },
  allow: { type: 'string', multiple: true, for: ['relay'] },
  json: { type: 'boolean', for: ALL },
  force: { type: 'boolean', for: ['get', 'index'] },
  symlinks: { type: 'boolean', for: ['get'] },
  'no-fsync': { type: 'boolean', for: ['get'] },
  'no-compression': { type: 'boolean', for: ['get'] },
  wait: { type: 'boolean', for: ['get'] },
  memory: { type: 'string', for: ENGINE },
  workers: { type: 'string', for: ENGINE },
  'max-rate': { type: 'string', for: ['get'] },
  priority: { type: 'string', for: ['get'] },
  'upload-limit': { type: 'string', for: SERVING },
  'max-open-files': { type: 'string', for: [...SERVING, 'get'] },
  public: { type: 'boolean', for: SERVING },
  dht: { type: 'boolean', for: ['send', 'get', 'seed'] },
  bootstrap: { type: 'string', multiple: true, for: ['send', 'get', 'seed'] },
  provide: { type: 'boolean', for: ['get'] },
  metrics: { type: 'string', for: ['send', 'get', 'seed'] },
  help: { type: 'boolean', short: 'h', for: ALL },
  version: { type: 'boolean', short: 'V', for: ALL },
} as const satisfies Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean; for: readonly Command[] }
>

export type Flag = keyof typeof FLAGS

/** The command line as read: flags given (absent ones are undefined) and positionals. */
export interface ParsedArgs {
  readonly values: {
    out?: string
    chunking?: string
    listen?: string[]
    'data-dir'?: string
    relay?: string[]
    'max-reservations'?: string
    'max-circuits'?: string
    allow?: string[]
    json?: boolean
    force?: boolean
    symlinks?: boolean
    'no-fsync'?: boolean
    'no-compression'?: boolean
    wait?: boolean
    memory?: string
    workers?: string
    'max-rate'?: string
    priority?: string
    'upload-limit'?: string
    'max-open-files'?: string
    public?: boolean
    dht?: boolean
    bootstrap?: string[]
    provide?: boolean
    metrics?: string
    help?: boolean
    version?: boolean
  }
  readonly positionals: string[]
}

/** node:util's parseArgs, with its refusals (unknown flag, missing or ambiguous value) as usage errors. */
export function parse(argv: string[]): ParsedArgs {
  // The command's own help when the first word names one (`haul get … -o` missing its value).
  const named = (COMMANDS as readonly string[]).includes(argv[0] ?? '')
  const help = named ? `haul ${argv[0]} --help` : 'haul --help'
  try {
    return refuseEmptyValues(
      parseArgs({ args: argv, allowPositionals: true, strict: true, options: FLAGS }),
      FLAGS,
      help,
    )
  } catch (err) {
    throw asUsageError(err, help)
  }
}

/**
 * Refuses a flag given an empty value (`-o ''`, a variable that was not set): node's parseArgs
 * takes it, and no flag means anything by it. Named as the user may have typed it (`-o/--out`).
 */
export function refuseEmptyValues<T extends { values: Record<string, unknown> }>(
  parsed: T,
  options: Readonly<Record<string, { readonly type: string; readonly short?: string }>>,
  help: string,
): T {
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value !== '' && !(Array.isArray(value) && value.includes(''))) continue
    const short = options[name]?.short
    const flag = short === undefined ? `--${name}` : `-${short}/--${name}`
    throw new InvalidArgumentError(`${flag} needs a value, got an empty one: see "${help}"`)
  }
  return parsed
}

/** A refusal of node:util's parseArgs as the usage error it is (exit 2), pointing at `help`; any other error as it is. */
export function asUsageError(err: unknown, help: string): unknown {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (!code.startsWith('ERR_PARSE_ARGS')) return err
  // A value starting with '-' (`--max-rate -5`) reads to node as a missing value followed by a
  // flag; the user meant it as the value, so the message says how to write one.
  const message = (err as Error).message
  const dashed = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message)
  if (dashed) {
    return new InvalidArgumentError(
      `${dashed[1]} needs a value; one that starts with "-" is written ${dashed[1]}=<value>: see "${help}"`,
    )
  }
  // Node names a flag with its short form and a placeholder ('-o, --out <value>'); the user typed one.
  const missing = /^Option '(?:(-\w), )?(--[\w-]+)(?: <value>)?' argument missing/.exec(message)
  if (missing) {
    const name = missing[1] === undefined ? missing[2] : `${missing[1]}/${missing[2]}`
    return new InvalidArgumentError(`${name} needs a value: see "${help}"`)
  }
  const unknown = /^Unknown option '([^']*)'/.exec(message)
  if (unknown) return new InvalidArgumentError(`unknown flag ${unknown[1]}: see "${help}"`)
  // Node's first sentence names the flag; the rest is advice about `--`.
  const first = message.split(/\.\s|\n/)[0]
  return new InvalidArgumentError(`${first}: see "${help}"`)
}

/** Whether `command` takes `flag`. */
export function takesFlag(command: Command, flag: Flag): boolean {
  return (FLAGS[flag].for as readonly Command[]).includes(command)
}

/** Refuses a flag the command does not take (`haul send --force`), rather than ignoring it. */
export function checkFlagsFor(command: Command, values: ParsedArgs['values']): void {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue
    const spec = FLAGS[name as Flag]
    if (!(spec.for as readonly Command[]).includes(command)) {
      throw new InvalidArgumentError(
        `--${name} is not an option of haul ${command}: see "haul ${command} --help"`,
      )
    }
  }
}

/** The engine options the flags set; the engine checks the rest of each value. */
export function engineOptionsOf(values: ParsedArgs['values']): EngineOptions {
  const upload = values['upload-limit']
  const openFiles = values['max-open-files']
  return {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.relay === undefined ? {} : { relays: values.relay }),
    ...(values.chunking === undefined ? {} : { chunking: chunkingOf(values.chunking) }),
    ...(values.memory === undefined ? {} : { memoryBudget: mebibytes('--memory', values.memory) }),
    ...(values.workers === undefined ? {} : { workers: positiveInt('--workers', values.workers) }),
    ...(upload === undefined ? {} : { limits: { uploadBytesPerSec: parseRate('--upload-limit', upload) } }),
    ...(values.metrics === undefined ? {} : { metrics: { listen: values.metrics } }),
    ...(openFiles === undefined
      ? {}
      : { server: { maxOpenFiles: positiveInt('--max-open-files', openFiles) } }),
    ...(values['no-compression'] === true ? { fetch: { codecs: ['none'] } } : {}),
    ...(values.dht !== true && values.bootstrap === undefined
      ? {}
      : {
          dht: { enabled: true, ...(values.bootstrap === undefined ? {} : { bootstrap: values.bootstrap }) },
        }),
  }
}

/**
 * The option a flag sets, to name the flag when the option's value is refused. `unit`: the flag
 * takes the option's value in a unit of its own (`--memory 16` is 16 MiB), in which a refused
 * range is said.
 */
export interface FlagOfOption {
  readonly option: string
  readonly flag: string
  readonly unit?: { readonly per: number; readonly name: string }
}

export const MIB_UNIT = { per: 1024 * 1024, name: 'MiB' } as const

/** The engine option each flag sets. */
const FLAG_OF_OPTION: readonly FlagOfOption[] = [
  { option: 'memoryBudget', flag: '--memory', unit: MIB_UNIT },
  { option: 'workers', flag: '--workers' },
  { option: 'listen', flag: '--listen' },
  { option: 'relays', flag: '--relay' },
  { option: 'dataDir', flag: '--data-dir' },
  { option: 'chunking', flag: '--chunking' },
  { option: 'limits.uploadBytesPerSec', flag: '--upload-limit' },
  { option: 'server.maxOpenFiles', flag: '--max-open-files' },
  { option: 'metrics.listen', flag: '--metrics' },
  { option: 'dht.bootstrap', flag: '--bootstrap' },
]

/**
 * Checks the engine options as the engine will (ranges, multiaddrs, the budget against the
 * chunk size) before anything starts: a value the engine refuses is a usage error naming its flag.
 */
export function checkEngineOptions(opts: EngineOptions, flags = FLAG_OF_OPTION): void {
  try {
    resolveEngineConfig(opts)
  } catch (err) {
    throw inFlagTerms(err, flags)
  }
}

/**
 * A ConfigInvalidError of options the command line set as the usage error it is, naming the
 * flags: a refused range of a flag with a unit in that unit (`--memory must be at least 4 (MiB),
 * got 1`), anything else after the flags it names. Any other error as it is.
 */
export function inFlagTerms(err: unknown, flags: readonly FlagOfOption[]): unknown {
  if (!(err instanceof ConfigInvalidError)) return err
  // An option named whole: `listen` is not `metrics.listen`.
  const named = flags.filter(({ option }) =>
    new RegExp(`(^|[^.\\w])${option.replaceAll('.', '\\.')}\\b`).test(err.message),
  )
  const [only] = named
  const range =
    /^(\S+) must be (0 \(off\) or )?an integer (?:>= (\d+)|from (\d+) to (\d+)), got (-?\d+)$/.exec(
      err.message,
    )
  if (named.length === 1 && only?.unit !== undefined && range?.[1] === only.option) {
    const { per, name } = only.unit
    const [, , orOff, atLeast, from, to, got] = range
    const limits =
      atLeast === undefined
        ? `from ${Number(from) / per} to ${Number(to) / per}`
        : `at least ${Number(atLeast) / per}`
    return new InvalidArgumentError(
      `${only.flag} must be ${orOff === undefined ? '' : '0 (off) or '}${limits} (${name}), got ${Number(got) / per}`,
      { cause: err },
    )
  }
  const prefix = named.length > 0 ? `${named.map((f) => f.flag).join(', ')}: ` : ''
  return new InvalidArgumentError(`${prefix}${err.message}`, { cause: err })
}

/**
 * The largest chunk the CLI makes: what a receiver with the default frame limit
 * (`server.maxFrame`, 8 MiB + 64 KiB) takes. Bigger chunks need both sides configured through
 * the engine API, which a receiver running `haul get` is not.
 */
export const CLI_MAX_CHUNK = 8 * 1024 * 1024

function chunkingOf(text: string): ChunkingParams {
  let p: ChunkingParams
  try {
    p = parseChunking(text)
  } catch (err) {
    throw new InvalidArgumentError(`--chunking: ${(err as Error).message}`)
  }
  const largest = maxChunkSize(p)
  if (largest > CLI_MAX_CHUNK) {
    throw new InvalidArgumentError(
      `--chunking: ${text} makes chunks of up to ${formatSize(largest)}; a haul receiver takes chunks of at most ${formatSize(CLI_MAX_CHUNK)}: choose fixed:4m, cdc:2m or a cdc maximum of 8m or less`,
    )
  }
  return p
}

export function positiveInt(name: string, v: string): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`${name} takes a positive whole number, got "${v}"`)
  return n
}

/** A whole number of MiB, in bytes. */
function mebibytes(name: string, v: string): number {
  const bytes = positiveInt(name, v) * 1024 * 1024
  const most = Math.floor(Number.MAX_SAFE_INTEGER / (1024 * 1024))
  if (!Number.isSafeInteger(bytes))
    throw new InvalidArgumentError(`${name} takes at most ${most} MiB, got "${v}"`)
  return bytes
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }

/**
 * A rate in bytes per second: a number with an optional binary unit, as sizes elsewhere in the
 * CLI: `500k` (500 KiB/s), `10M`, `1.5G`, also written `10MiB`, `10MiB/s`. Decimal units (`MB`)
 * are refused rather than guessed.
 */
export function parseRate(name: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(?:ib|i)?)?\s*(?:\/s)?\s*$/i.exec(text)
  const n = m === null ? Number.NaN : Number(m[1]) * RATE_UNITS[(m[2] ?? '').toLowerCase()]!
  if (!Number.isFinite(n) || n < 1) {
    const hint = /\d\s*[kmg]b/i.test(text)
      ? ' (KB, MB and GB are ambiguous: units are binary, write 10M or 10MiB)'
      : ''
    throw new InvalidArgumentError(
      `${name} takes bytes per second, e.g. 500k, 10M or 1.5G (binary units), got "${text}"${hint}`,
    )
  }
  return Math.floor(n)
}

export function parsePriority(text: string): Priority {
  if ((PRIORITIES as readonly string[]).includes(text)) return text as Priority
  throw new InvalidArgumentError(`--priority takes ${PRIORITIES.join(', ')}, got "${text}"`)
}

/** The one path a command takes: more is refused, not silently dropped. */
export function onePath(paths: readonly string[], command: Command, what = 'file'): string {
  const [path, ...more] = paths
  if (path === undefined) throw new InvalidArgumentError(`missing argument: haul ${command} <${what}>`)
  if (more.length > 0) {
    throw new InvalidArgumentError(
      `haul ${command} takes one ${what}, got ${more.length + 1}: run it once per ${what}`,
    )
  }
  return path
}
