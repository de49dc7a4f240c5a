/**
 * Fills and checks options from the table (./table.ts), with one rule set for every group:
 *
 * - a field left out or `undefined`, at any depth, takes its default (a group too);
 * - a key the table does not have is a ConfigInvalidError naming it;
 * - a value of the wrong type or out of range is a ConfigInvalidError naming its full path
 *   (`fetch.windowBytes must be ...`);
 * - then the cross-field rules (./rules.ts) run on the whole result.
 *
 * The caller's objects are never changed, and the result shares no object with them or with
 * the table.
 *
 * Typed by the table alone (`TableConfig`), not by the option types of the modules it serves,
 * so that those modules may import it; src/engine/config.ts gives it the public types.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { verifyChunkingParams } from '../../chunking/params.ts'
import { ConfigInvalidError, InternalError, InvalidArgumentError } from '../../errors.ts'
import { parseHostPort } from '../../metrics/address.ts'
import { type ChunkingParams, CODECS } from '../../types.ts'
import { crossRules } from './rules.ts'
import { isSpec, type Leaf, type OptionSpec } from './schema.ts'
import { optionTable, type TableConfig } from './table.ts'

interface Group {
  readonly [key: string]: OptionSpec | Group
}

/** A computed default waiting for the rest of the config. */
interface Pending {
  readonly path: string
  readonly spec: OptionSpec
  readonly into: Record<string, unknown>
  readonly key: string
}

const table: Group = optionTable

/** Fills defaults and checks every option of an engine's options object. */
export function resolveAll(opts: unknown): TableConfig {
  const pending: Pending[] = []
  const config = resolveGroup(table, opts, '', pending) as unknown as TableConfig
  for (const p of pending) {
    const value = (p.spec.default as (c: TableConfig) => unknown)(config)
    checkValue(p.spec, value, p.path)
    p.into[p.key] = value
  }
  runRules(config, () => true)
  return config
}

/** Every option path: `memoryBudget`, `fetch`, `fetch.windowBytes`, `network.admission.maxPending`, ... */
export type OptionPath = PathsOf<TableConfig>
type PathsOf<T> = {
  [K in keyof T & string]: NonNullable<T[K]> extends Leaf ? K : K | `${K}.${PathsOf<T[K]>}`
}[keyof T & string]

export type ValueAt<T, P extends string> = P extends `${infer K}.${infer R}`
  ? K extends keyof T
    ? ValueAt<T[K], R>
    : never
  : P extends keyof T
    ? T[P]
    : never

/**
 * One option or group resolved by the same rules as in an engine, for a module that takes
 * some engine options directly (the network): its defaults, its checks, the cross-field rules
 * inside it. An option whose default follows other options cannot be resolved alone.
 */
export function resolveOption<P extends OptionPath>(path: P, value: unknown): ValueAt<TableConfig, P> {
  const node = nodeAt(path)
  if (isSpec(node)) {
    if (value !== undefined) {
      checkValue(node, value, path)
      return copy(value) as ValueAt<TableConfig, P>
    }
    if (typeof node.default === 'function') throw new InternalError(`${path}'s default follows other options`)
    return copy(node.default) as ValueAt<TableConfig, P>
  }
  const pending: Pending[] = []
  const group = resolveGroup(node, value, path, pending)
  if (pending.length > 0) throw new InternalError(`${pending[0]!.path}'s default follows other options`)
  const whole: Record<string, unknown> = {}
  let at = whole
  const keys = path.split('.')
  keys.forEach((k, i) => {
    at[k] = i === keys.length - 1 ? group : {}
    at = at[k] as Record<string, unknown>
  })
  runRules(whole as unknown as TableConfig, (p) => p.startsWith(`${path}.`))
  return group as ValueAt<TableConfig, P>
}

function nodeAt(path: string): OptionSpec | Group {
  let node: OptionSpec | Group = table
  for (const k of path.split('.')) {
    const next: OptionSpec | Group | undefined = isSpec(node) ? undefined : node[k]
    if (next === undefined) throw new InternalError(`no option ${path}`)
    node = next
  }
  return node
}

function resolveGroup(
  group: Group,
  given: unknown,
  path: string,
  pending: Pending[],
): Record<string, unknown> {
  const name = path === '' ? 'the engine options' : path
  if (given !== undefined && (typeof given !== 'object' || given === null || Array.isArray(given))) {
    throw new ConfigInvalidError(`${name} must be an object of options, got ${show(given)}`)
  }
  const values = (given ?? {}) as Record<string, unknown>
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(group, key)) {
      throw new ConfigInvalidError(
        `${join(path, key)} is not an engine option; ${path === '' ? 'the top level' : path} has ${Object.keys(group).join(', ')}`,
      )
    }
  }
  const out: Record<string, unknown> = {}
  for (const [key, node] of Object.entries(group)) {
    const at = join(path, key)
    const value = values[key]
    if (!isSpec(node)) out[key] = resolveGroup(node, value, at, pending)
    else if (value !== undefined) {
      checkValue(node, value, at)
      out[key] = copy(value)
    } else if (typeof node.default === 'function') {
      out[key] = undefined
      pending.push({ path: at, spec: node, into: out, key })
    } else out[key] = copy(node.default)
  }
  return out
}

function runRules(config: TableConfig, applies: (path: string) => boolean): void {
  for (const rule of crossRules) {
    if (!rule.paths.every(applies)) continue
    const wrong = rule.check(config)
    if (wrong !== undefined) throw new ConfigInvalidError(wrong)
  }
}

/** Throws ConfigInvalidError unless `v` is a value `spec` accepts. */
export function checkValue(spec: OptionSpec, v: unknown, path: string): void {
  const want = unmet(spec, v, path)
  if (want !== undefined) throw new ConfigInvalidError(`${path} must be ${want}, got ${show(v)}`)
}

/** What `v` fails to be, or undefined; throws itself where the reason comes from elsewhere. */
function unmet(spec: OptionSpec, v: unknown, path: string): string | undefined {
  switch (spec.kind) {
    case 'int': {
      const min = spec.min ?? 0
      const max = spec.max ?? Number.MAX_SAFE_INTEGER
      const n = v as number
      if (Number.isSafeInteger(n) && ((n >= min && n <= max) || (spec.orZero === true && n === 0))) {
        return undefined
      }
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
      return spec.orZero === true ? `0 (off) or an integer ${range}` : `an integer ${range}`
    }
    case 'number': {
      const min = spec.min ?? 0
      const n = v as number
      const unlimited = spec.infinite === true && n === Number.POSITIVE_INFINITY
      if (typeof n === 'number' && n > min && (Number.isFinite(n) || unlimited)) return undefined
      return spec.infinite === true ? `a number > ${min} (Infinity: unlimited)` : `a finite number > ${min}`
    }
    case 'bool':
      return typeof v === 'boolean' ? undefined : 'true or false'
    case 'enum':
      return spec.values?.includes(v as string) ? undefined : `one of ${spec.values?.join(', ')}`
    case 'path':
      return typeof v === 'string' && v !== '' ? undefined : 'a non-empty path'
    case 'hostport':
      return typeof v === 'string' && parseHostPort(v) !== undefined
        ? undefined
        : 'host:port (such as 127.0.0.1:9464, [::1]:9464; port 0: any free port)'
    case 'multiaddrs': {
      if (!Array.isArray(v) || !v.every((a) => typeof a === 'string')) return 'an array of multiaddr strings'
      for (const addr of v) {
        try {
          multiaddr(addr)
        } catch (err) {
          throw new ConfigInvalidError(`${path}: ${JSON.stringify(addr)} is not a valid multiaddr`, {
            cause: err,
          })
        }
      }
      return undefined
    }
    case 'codecs': {
      const known: readonly unknown[] = CODECS
      const ok =
        Array.isArray(v) &&
        v.every((c) => known.includes(c)) &&
        new Set(v).size === v.length &&
        v.includes('none')
      return ok ? undefined : `a list of codecs from ${CODECS.join(', ')}, each once, \`none\` among them`
    }
    case 'chunking': {
      if (typeof v !== 'object' || v === null) return 'chunking parameters ({ kind: "fixed", size } or "cdc")'
      try {
        verifyChunkingParams(v as ChunkingParams)
      } catch (err) {
        if (!(err instanceof InvalidArgumentError)) throw err
        throw new ConfigInvalidError(`${path}: ${err.message}`, { cause: err })
      }
      return undefined
    }
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** Arrays and objects are copied, so that the result shares nothing with its sources. */
function copy(v: unknown): unknown {
  if (Array.isArray(v)) return [...v]
  if (typeof v === 'object' && v !== null) return { ...v }
  return v
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v)
  try {
    const text = JSON.stringify(v)
    return text.length > 80 ? `${text.slice(0, 77)}...` : text
  } catch {
    return Object.prototype.toString.call(v)
  }
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

/**
 * The options an engine created without any runs with (`workers` follows this machine). The
 * one source of every default: lower modules that take an option outside an engine read it here.
 */
export const engineDefaults: TableConfig = deepFreeze(resolveAll({}))
