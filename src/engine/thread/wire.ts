/**
 * What crosses the boundary between a host and its engine thread (`thread: 'worker'`): errors as
 * data that rebuild into their own classes, the state the host mirrors for the API's
 * synchronous reads, and the shape of the object the engine thread exposes through comlink.
 *
 * Structured clone keeps an Error's message but not its class, its `code` or its fields, so a
 * HaulError travels as a WireError and is rebuilt from its code (errorClassOf): `instanceof`
 * and `.code` hold on the host as they do in the engine's own thread.
 */
import { transferHandlers } from 'comlink'
import type { CollectionFetchOptions, CollectionResult } from '../../collection/fetch-collection.ts'
import type { CollectionIndex } from '../../collection/publish-collection.ts'
import { errorClassOf, isHaulError } from '../../errors.ts'
import type { ServeEvent } from '../../serve/serve-events.ts'
import type { Provider } from '../../ticket/multi-ticket.ts'
import type { TransferProgress } from '../../transfer/progress.ts'
import type { TransferStatus } from '../../transfer/transfer-machine.ts'
import type { FetchResult, SwarmStats } from '../../transfer/transfer-types.ts'
import type { FetchOptions, Published, PublishOptions, Seeded, SeedOptions } from '../api-types.ts'
import type { EngineConfig, EngineOptions } from '../config.ts'
import type { EngineStats } from '../stats.ts'

const WIRE_ERROR = '__haulWireError'

/** An Error as data: its class by `code` (a HaulError) or `name` (any other). */
export interface WireError {
  readonly [WIRE_ERROR]: true
  readonly code: string | undefined
  readonly name: string
  readonly message: string
  readonly stack: string | undefined
  readonly cause: unknown
  /** Own fields beside the standard ones (a subclass's extra data), those that clone. */
  readonly fields: Record<string, unknown>
}

const STANDARD = new Set(['name', 'code', 'message', 'stack', 'cause'])

function clonable(value: unknown): boolean {
  try {
    structuredClone(value)
    return true
  } catch {
    return false
  }
}

/** An Error (and its cause, and their causes) as data; any other value as it is. */
export function encodeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return clonable(err) ? err : String(err)
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(err)) if (!STANDARD.has(k) && clonable(v)) fields[k] = v
  const wire: WireError = {
    [WIRE_ERROR]: true,
    code: isHaulError(err) ? err.code : undefined,
    name: err.name,
    message: err.message,
    stack: err.stack,
    // A cycle of causes stops somewhere.
    cause: err.cause === undefined || depth > 8 ? undefined : encodeError(err.cause, depth + 1),
    fields,
  }
  return wire
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as WireError)[WIRE_ERROR] === true
}

/** What encodeError made, rebuilt: a HaulError of its code's class, or a plain Error. */
export function decodeError(value: unknown): unknown {
  if (!isWireError(value)) return value
  const cause = value.cause === undefined ? undefined : { cause: decodeError(value.cause) }
  let err: Error
  if (value.code !== undefined) err = new (errorClassOf(value.code))(value.message, cause)
  else {
    err = new Error(value.message, cause)
    err.name = value.name
  }
  if (value.stack !== undefined) err.stack = value.stack
  return Object.assign(err, value.fields)
}

/**
 * Errors and plain data inside a value (a RetryInfo's `error`): arrays and plain objects are
 * walked, anything else is left for structured clone.
 */
export function encodeDeep(value: unknown): unknown {
  if (value instanceof Error) return encodeError(value)
  if (Array.isArray(value)) return value.map(encodeDeep)
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = encodeDeep(v)
    return out
  }
  return value
}

export function decodeDeep(value: unknown): unknown {
  if (isWireError(value)) return decodeError(value)
  if (Array.isArray(value)) return value.map(decodeDeep)
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = decodeDeep(v)
    return out
  }
  return value
}

interface Thrown {
  value: unknown
}

/**
 * Replaces comlink's handler for thrown values (which keeps only message, name and stack) with
 * one that carries the class and code. Both threads register it: the engine thread serialises
 * what a call threw, the host rebuilds and throws it.
 */
let registered = false

export function registerErrorHandler(): void {
  const builtIn = transferHandlers.get('throw')
  // Once per thread: a second call would wrap this handler in itself.
  if (registered || builtIn === undefined) return
  registered = true
  transferHandlers.set('throw', {
    canHandle: (v: unknown): v is unknown => builtIn.canHandle(v),
    serialize: (v: unknown) => [{ error: encodeError((v as Thrown).value) }, []],
    deserialize: (s: unknown) => {
      throw decodeError((s as { error: unknown }).error)
    },
  })
}

/** One transfer as the host sees it: what `status()`, `progress()` and `swarmStats()` return. */
export interface TransferState {
  readonly id: string
  readonly status: TransferStatus
  readonly progress: TransferProgress | undefined
  readonly swarm: SwarmStats | undefined
}

/** What the engine thread sends the host for the API's synchronous reads. */
export interface ThreadState {
  readonly stats: EngineStats
  readonly addresses: string[]
  /** The transfers whose state changed since the last state sent. */
  readonly transfers: readonly TransferState[]
}

/** What the engine thread says once its engine is up. */
export interface Started {
  readonly config: EngineConfig
  readonly peerId: string
  readonly metricsAddress: string | undefined
  readonly state: ThreadState
}

/** Calls back to the host: a callback of the caller's options, by name, its arguments encoded. */
export type Emit = (name: string, args: unknown[]) => void | Promise<void>

/** An option set without what does not clone: the signal (`aborted` says if it already was) and callbacks. */
export type Plain<T> = Omit<T, 'signal' | `on${string}`> & {
  aborted?: boolean
  /** The callbacks the caller gave, called through the call's Emit. */
  callbacks?: string[]
}

/**
 * The object the engine thread exposes. `call` names one call, so that the host's AbortSignal
 * for it can abort it (`abort`); a fetch's call is its transfer id.
 */
export interface ThreadApi {
  /** `warn` gets the thread's process warnings (haul's own among them), raised again in the host. */
  start(
    options: EngineOptions,
    sink: (state: ThreadState) => void,
    warn: (warning: { name: string; message: string }) => void,
  ): Promise<Started>
  publish(call: string, path: string, opts: Plain<PublishOptions>, emit?: Emit): Promise<Published>
  publishCollection(
    call: string,
    paths: readonly string[],
    opts: Plain<PublishOptions>,
    emit?: Emit,
  ): Promise<{ ticket: string; index: CollectionIndex }>
  unpublish(cid: Uint8Array): void
  fetch(
    id: string,
    ticket: string,
    dest: string,
    opts: Plain<FetchOptions>,
    emit?: Emit,
  ): Promise<FetchResult>
  cancel(id: string): void
  addProvider(id: string, provider: Provider): void
  fetchCollection(
    call: string,
    ticket: string,
    dest: string,
    opts: Plain<CollectionFetchOptions>,
    emit?: Emit,
  ): Promise<CollectionResult>
  seed(dest: string, opts: SeedOptions): Promise<Seeded>
  /**
   * A publish's or seed's `announced` (a promise, which no message carries): the reply says
   * `announced: true` when there is one, and the host asks for it by content id (hex).
   */
  announced(cid: string): Promise<boolean>
  abort(call: string): void
  /** Sends every ServeEvent to `listener` from now on (the host fans them out). */
  listenServe(listener: (event: ServeEvent) => void): void
  stop(): Promise<void>
}
