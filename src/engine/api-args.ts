/**
 * What the engine's methods check of their arguments before any work starts, so that a wrong
 * type is an `INVALID_ARGUMENT` naming the argument (not a `TypeError` from deep inside), and the
 * one rule for a caller's callbacks: they are functions, and one that throws is the caller's bug,
 * never the transfer's — it is reported as a process warning and the transfer goes on, in the
 * host's thread as in `thread: 'worker'` (where a callback runs in another thread anyway).
 */
import { sep } from 'node:path'
import { cidFromString } from '../descriptor/cid.ts'
import { AbortedError, InvalidArgumentError, tooManyOpenFiles } from '../errors.ts'
import { parseAddrs, parsePeer } from '../net/peer-addr.ts'
import { SECRET_BYTES } from '../protocol/messages.ts'
import { MAX_PROVIDER_ADDRS, MAX_TICKET_PROVIDERS, type Provider } from '../ticket/multi-ticket.ts'

/**
 * Each method's checks of its arguments, run where the caller calls, in the host's thread and
 * before `thread: 'worker'` sends anything to the engine's thread: the same errors in both modes.
 * Each returns the options guarded (see guardOptions).
 */
export const checkArgs = {
  publish<O extends object>(path: unknown, opts: O | undefined): O {
    checkPath('publish: path', path)
    return guardOptions('publish', opts)
  },
  seed<O extends object>(dest: unknown, opts: O | undefined): O {
    checkFilePath('seed: dest', dest)
    return guardOptions('seed', opts)
  },
  /** A path or a list of them, as the list. */
  publishCollection<O extends object>(paths: unknown, opts: O | undefined): { list: string[]; opts: O } {
    const list: unknown[] = typeof paths === 'string' ? [paths] : Array.isArray(paths) ? [...paths] : [paths]
    for (const p of list) checkPath('publishCollection: each path', p)
    return { list: list as string[], opts: guardOptions('publishCollection', opts) }
  },
  fetch<O extends { providers?: unknown }>(ticket: unknown, dest: unknown, opts: O | undefined): O {
    checkTicketText(ticket)
    checkFilePath('fetch: dest', dest)
    const guarded = guardOptions('fetch', opts)
    checkProviders(guarded.providers)
    return guarded
  },
  fetchCollection<O extends object>(ticket: unknown, dest: unknown, opts: O | undefined): O {
    checkTicketText(ticket)
    checkPath('fetchCollection: dest', dest)
    return guardOptions('fetchCollection', opts)
  },
}

/** A path argument: a non-empty string without NUL (the OS would refuse it). */
export function checkPath(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(`${name} must be a path (a non-empty string), got ${describe(value)}`)
  }
  if (value.includes('\0')) throw new InvalidArgumentError(`${name} must not contain a NUL character`)
}

/**
 * A file's path: a path that does not end in a separator, which names a folder (the file would
 * otherwise be written under the last name before it, not in that folder).
 */
function checkFilePath(name: string, value: unknown): asserts value is string {
  checkPath(name, value)
  if (value.endsWith('/') || value.endsWith(sep)) {
    throw new InvalidArgumentError(
      `${name} '${value}' ends in a separator, which names a folder: give the file's own path in it (${value}<file name>)`,
    )
  }
}

/** A ticket or content id argument: a string (decoding checks the rest). */
export function checkTicketText(value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(
      `the ticket must be a string (haul1…, or a content id), got ${describe(value)}`,
    )
  }
}

/** A content id given as its 32 bytes, or as its text (`b…`, as cidToString and `haul send --json` write it). */
export function contentIdArg(value: unknown): Uint8Array {
  if (typeof value === 'string') return cidFromString(value)
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    throw new InvalidArgumentError(
      `the content id must be 32 bytes (a Uint8Array) or its text (b…), got ${describe(value)}`,
    )
  }
  return value
}

/**
 * A fetch's `providers` option: at most as many peers as a ticket names, each checked as
 * addProvider checks one (checkProvider).
 */
export function checkProviders(value: unknown): void {
  if (value === undefined) return
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(
      `fetch option providers must be an array of { peerId, addrs, secret? }, got ${describe(value)}`,
    )
  }
  if (value.length > MAX_TICKET_PROVIDERS) {
    throw new InvalidArgumentError(
      `fetch option providers names ${value.length} peers, more than the ${MAX_TICKET_PROVIDERS} a fetch takes`,
    )
  }
  value.forEach((p, i) => {
    checkProvider(`fetch option providers[${i}]`, p)
  })
}

/**
 * One peer named beside a ticket (FetchOptions.providers, TransferHandle.addProvider): its peer
 * id, 1..16 multiaddrs (each of that peer, when it names one) and, when given, a secret of
 * SECRET_BYTES. Checked where the caller calls, so a wrong one is INVALID_ARGUMENT naming it
 * rather than a provider the fetch silently never reaches.
 */
export function checkProvider(name: string, value: unknown): asserts value is Provider {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(
      `${name} must be an object { peerId, addrs, secret? }, got ${describe(value)}`,
    )
  }
  const { peerId, addrs, secret } = value as Record<string, unknown>
  if (typeof peerId !== 'string') {
    throw new InvalidArgumentError(`${name}.peerId must be a peer id (a string), got ${describe(peerId)}`)
  }
  if (!Array.isArray(addrs) || !addrs.every((a) => typeof a === 'string')) {
    throw new InvalidArgumentError(
      `${name}.addrs must be an array of multiaddr strings, got ${describe(addrs)}`,
    )
  }
  if (addrs.length === 0 || addrs.length > MAX_PROVIDER_ADDRS) {
    throw new InvalidArgumentError(
      `${name}.addrs must hold 1..${MAX_PROVIDER_ADDRS} addresses (a peer is reached at one), got ${addrs.length}`,
    )
  }
  if (secret !== undefined && !(secret instanceof Uint8Array && secret.length === SECRET_BYTES)) {
    throw new InvalidArgumentError(
      `${name}.secret must be ${SECRET_BYTES} bytes (a Uint8Array, as a ticket carries it), got ${describe(secret)}`,
    )
  }
  try {
    parseAddrs(parsePeer(peerId), addrs)
  } catch (err) {
    throw new InvalidArgumentError(`${name}: ${(err as Error).message}`, { cause: err })
  }
}

type Method = 'publish' | 'publishCollection' | 'seed' | 'fetch' | 'fetchCollection'

const FLAGS = [
  'overwrite',
  'waitIfBusy',
  'swarm',
  'provide',
  'symlinks',
  'sync',
  'intoExisting',
  'public',
  'announce',
]
const SERVE_KEYS = ['public', 'announce']
const PUBLISH_KEYS = ['signal', 'onProgress', ...SERVE_KEYS]
const FETCH_SHARED = ['signal', 'onProgress', 'onRetry', 'onResume', 'onWait', 'priority', 'maxBytesPerSec']
/** What the engine's own collection fetch passes to fetch: taken, never offered in a message. */
const INTERNAL_KEYS = ['accept', 'scratch', 'onChunk']
/** The options each method takes (the types in api-types.ts and CollectionFetchOptions): a typo is refused. */
const OPTION_KEYS: Record<Method, ReadonlySet<string>> = {
  publish: new Set(PUBLISH_KEYS),
  publishCollection: new Set(PUBLISH_KEYS),
  seed: new Set(SERVE_KEYS),
  fetch: new Set([
    ...FETCH_SHARED,
    'providers',
    'overwrite',
    'waitIfBusy',
    'swarm',
    'provide',
    ...INTERNAL_KEYS,
  ]),
  fetchCollection: new Set([
    ...FETCH_SHARED,
    'onFile',
    'onRoute',
    'overwrite',
    'waitIfBusy',
    'symlinks',
    'sync',
    'intoExisting',
  ]),
}

/** Options of a method that are not a callback or the signal: their type and range. */
function checkValues(what: Method, opts: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined) continue
    if (!OPTION_KEYS[what].has(key)) {
      throw new InvalidArgumentError(
        `${what} has no option ${key}: it takes ${[...OPTION_KEYS[what]].filter((k) => !INTERNAL_KEYS.includes(k)).join(', ')}`,
      )
    }
    if (FLAGS.includes(key) && typeof value !== 'boolean') {
      throw new InvalidArgumentError(`${what} option ${key} must be true or false, got ${describe(value)}`)
    }
  }
  const rate = opts.maxBytesPerSec
  if (rate !== undefined && !(typeof rate === 'number' && rate >= 1)) {
    throw new InvalidArgumentError(
      `${what} option maxBytesPerSec must be a number of bytes per second, at least 1 (Infinity: no limit), got ${describe(rate)}`,
    )
  }
  const priority = opts.priority
  if (priority !== undefined && !['low', 'normal', 'high'].includes(priority as string)) {
    throw new InvalidArgumentError(
      `${what} option priority must be 'low', 'normal' or 'high', got ${describe(priority)}`,
    )
  }
}

/**
 * The options object with every callback (a key `on…`) wrapped so that a throw stays out of the
 * transfer, and `signal` checked. Anything but an object (or undefined) is refused; so is an
 * option the method does not take, a value of the wrong type, and an `on…` option that is not
 * a function.
 */
export function guardOptions<T extends object>(what: Method, opts: T | undefined): T {
  if (opts === undefined) return {} as T
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new InvalidArgumentError(`${what} options must be an object, got ${describe(opts)}`)
  }
  checkValues(what, opts as Record<string, unknown>)
  const signal = (opts as { signal?: unknown }).signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError(`${what} option signal must be an AbortSignal, got ${describe(signal)}`)
  }
  let guarded: Record<string, unknown> | undefined
  for (const [key, value] of Object.entries(opts)) {
    if (!/^on[A-Z]/.test(key) || value === undefined) continue
    if (typeof value !== 'function') {
      throw new InvalidArgumentError(`${what} option ${key} must be a function, got ${describe(value)}`)
    }
    guarded ??= { ...(opts as Record<string, unknown>) }
    guarded[key] = shielded(key, value as (...args: unknown[]) => unknown)
  }
  return (guarded ?? opts) as T
}

/**
 * A listener the engine calls for as long as it is registered (`onServe`): a function, shielded
 * as an option's callback is, its first throw reported.
 */
export function guardListener<F extends (...args: never[]) => unknown>(name: string, listener: F): F {
  if (typeof listener !== 'function') {
    throw new InvalidArgumentError(`${name} takes a function, got ${describe(listener)}`)
  }
  return shielded(name, listener as unknown as (...args: unknown[]) => unknown, 'listener') as unknown as F
}

/**
 * `f`, with a throw (or a rejected promise it returns) reported instead of passed on: the first
 * one of this call's callback (or this listener's), as a progress callback that throws would
 * throw every time.
 */
function shielded(
  key: string,
  f: (...args: unknown[]) => unknown,
  per: 'call' | 'listener' = 'call',
): (...args: unknown[]) => unknown {
  let reported = false
  const report = (err: unknown): void => {
    if (reported) return
    reported = true
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
    process.emitWarning(
      `the ${key} callback threw; haul ignores it (said once per ${per}) and goes on: ${detail}`,
      {
        type: 'HaulCallbackWarning',
      },
    )
  }
  return (...args) => {
    try {
      const r = f(...args)
      if (r instanceof Promise) r.catch(report)
      return r
    } catch (err) {
      report(err)
      return undefined
    }
  }
}

/**
 * Runs `f`; a synchronous throw becomes the returned promise's rejection, and the reason of the
 * caller's aborted signal (an AbortError, or a TimeoutError from `AbortSignal.timeout`), thrown
 * by whichever Node API or check noticed it first, is ABORTED like haul's own; an EMFILE or
 * ENFILE that no lower layer typed is TOO_MANY_OPEN_FILES.
 */
export function rejecting<T>(f: () => Promise<T>): Promise<T> {
  const aborted = (err: unknown): never => {
    const platform = err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')
    throw platform ? new AbortedError(undefined, { cause: err }) : (tooManyOpenFiles(err) ?? err)
  }
  try {
    return f().catch(aborted)
  } catch (err) {
    return Promise.reject(err).catch(aborted)
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'undefined'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'object')
    return Array.isArray(v) ? 'an array' : `an object (${v.constructor?.name ?? 'Object'})`
  return `${typeof v} ${String(v)}`
}
