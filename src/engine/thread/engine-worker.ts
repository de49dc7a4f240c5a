/**
 * The engine thread of `createEngine({ thread: 'worker' })`: one Engine, exposed through comlink
 * to the host (./host.ts) that started this worker. Every call's reply follows the state it
 * changed (`flush`) and the callbacks it made, in the order the engine's own thread would show
 * them: a host sees a fetch's last progress and its final status before its result.
 */
import { parentPort } from 'node:worker_threads'
import { expose, type Remote, releaseProxy } from 'comlink'
import { InternalError } from '../../errors.ts'
import type { TransferHandle } from '../api-types.ts'
import type { EngineOptions } from '../config.ts'
import { Engine } from '../engine.ts'
import { nodeEndpoint } from './endpoint.ts'
import {
  type Emit,
  encodeDeep,
  type Plain,
  registerErrorHandler,
  type ThreadApi,
  type ThreadState,
  type TransferState,
} from './wire.ts'

/** How often the host's copy of stats, addresses and transfer states is brought up to date. */
export const STATE_INTERVAL_MS = 100

registerErrorHandler()

let engine: Engine | undefined
let sink: Remote<(state: ThreadState) => void> | undefined
let ticker: NodeJS.Timeout | undefined
/** Each call's AbortController, while it runs (a fetch's until its result settles). */
const calls = new Map<string, AbortController>()
/** Running fetches by id, and the state the host last got for each. */
const transfers = new Map<string, { handle: TransferHandle; sent: string }>()
let lastSent = ''

function running(): Engine {
  if (engine === undefined) throw new InternalError('the engine thread has no engine: start it first')
  return engine
}

function transferState(id: string, handle: TransferHandle): TransferState {
  return { id, status: handle.status(), progress: handle.progress(), swarm: handle.swarmStats() }
}

/** What changed since the last state sent: stats and addresses, and every transfer that moved. */
function stateNow(all: boolean): ThreadState | undefined {
  const e = running()
  const changed: TransferState[] = []
  for (const [id, t] of transfers) {
    const s = transferState(id, t.handle)
    const key = `${s.status}:${s.progress?.bytesDone}:${s.progress?.chunksDone}`
    if (key !== t.sent) {
      t.sent = key
      changed.push(s)
    }
  }
  const state = { stats: e.stats(), addresses: e.addresses, transfers: changed }
  const text = JSON.stringify(state.stats) + state.addresses.join()
  if (!all && changed.length === 0 && text === lastSent) return undefined
  lastSent = text
  return state
}

/** Sends the state, and resolves once the host has it: a reply sent after this comes after it. */
async function flush(): Promise<void> {
  const state = stateNow(false)
  if (state !== undefined) await sink?.(state)
}

/**
 * The caller's callbacks, called through `emit`; `settled()` resolves once the host has run
 * every one called so far (the port delivers them in order, so the last one's reply is enough).
 */
function callbacksOf(names: string[] | undefined, emit: Remote<Emit> | undefined) {
  let last: Promise<void> = Promise.resolve()
  const fns: Record<string, (...args: unknown[]) => void> = {}
  for (const name of names ?? []) {
    fns[name] = (...args) => {
      if (emit === undefined) return
      last = emit(name, args.map(encodeDeep)).catch(() => {})
    }
  }
  return {
    fns,
    settled: () => last,
    release: () => emit?.[releaseProxy](),
  }
}

/** Runs one call with its own signal and callbacks; its reply waits for their delivery and the state. */
async function withCall<T>(
  call: string,
  opts: Plain<object>,
  emit: Remote<Emit> | undefined,
  run: (signal: AbortSignal, fns: Record<string, (...args: unknown[]) => void>, rest: object) => Promise<T>,
): Promise<T> {
  const { aborted, callbacks, ...rest } = opts
  const controller = new AbortController()
  if (aborted === true) controller.abort()
  calls.set(call, controller)
  const cbs = callbacksOf(callbacks, emit)
  try {
    return await run(controller.signal, cbs.fns, rest)
  } finally {
    calls.delete(call)
    await cbs.settled()
    cbs.release()
    await flush().catch(() => {})
  }
}

/** Announcements on the DHT by content id (hex), for the host to ask for (ThreadApi.announced). */
const announcements = new Map<string, Promise<boolean>>()

/** `r` without its `announced` promise, which is kept here; `announced: true` tells the host there is one. */
function announcing<T extends { announced?: Promise<boolean> }>(r: T, cidOf: (r: T) => Uint8Array): T {
  if (r.announced === undefined) return r
  const cid = Buffer.from(cidOf(r)).toString('hex')
  announcements.set(cid, r.announced)
  // Bounded by what is published: forgotten once settled, the host having asked or not.
  void r.announced.finally(() => setTimeout(() => announcements.delete(cid), 60_000).unref())
  return { ...r, announced: true } as unknown as T
}

const api: ThreadApi = {
  async start(options: EngineOptions, stateSink, warn) {
    sink = stateSink as unknown as Remote<(state: ThreadState) => void>
    // A warning raised here (a port held by another program, a name receivers will not keep)
    // reaches the host's process, where an embedder listens, and is printed there once: not here.
    const raise = warn as unknown as Remote<(w: { name: string; message: string }) => void>
    process.removeAllListeners('warning')
    process.on('warning', (w) => void raise({ name: w.name, message: w.message }).catch(() => {}))
    engine = await Engine.create({ ...options, thread: 'main' })
    ticker = setInterval(() => void flush().catch(() => {}), STATE_INTERVAL_MS)
    const state = stateNow(true)!
    return {
      config: { ...engine.config, thread: 'worker' },
      peerId: engine.peerId,
      metricsAddress: engine.metricsAddress,
      state,
    }
  },
  publish: (call, path, opts, emit) =>
    withCall(call, opts, emit as Remote<Emit> | undefined, async (signal, fns, rest) =>
      announcing(await running().publish(path, { ...rest, ...fns, signal }), (p) => p.index.cid),
    ),
  publishCollection: (call, paths, opts, emit) =>
    withCall(call, opts, emit as Remote<Emit> | undefined, (signal, fns, rest) =>
      running().publishCollection(paths, { ...rest, ...fns, signal }),
    ),
  unpublish(cid) {
    running().unpublish(cid)
  },
  fetch: (id, ticket, dest, opts, emit) =>
    withCall(id, opts, emit as Remote<Emit> | undefined, async (signal, fns, rest) => {
      const handle = running().fetch(ticket, dest, { ...rest, ...fns, signal })
      transfers.set(id, { handle, sent: '' })
      try {
        return await handle.result
      } finally {
        // Its final state reaches the host before the reply does.
        const last = transferState(id, handle)
        transfers.delete(id)
        await sink?.({ stats: running().stats(), addresses: running().addresses, transfers: [last] })
      }
    }),
  cancel(id) {
    transfers.get(id)?.handle.cancel()
  },
  addProvider(id, provider) {
    transfers.get(id)?.handle.addProvider(provider)
  },
  fetchCollection: (call, ticket, dest, opts, emit) =>
    withCall(call, opts, emit as Remote<Emit> | undefined, (signal, fns, rest) =>
      running().fetchCollection(ticket, dest, { ...rest, ...fns, signal }),
    ),
  async seed(dest, opts) {
    try {
      return announcing(await running().seed(dest, opts), (s) => s.cid)
    } finally {
      await flush().catch(() => {})
    }
  },
  announced: (cid) => announcements.get(cid) ?? Promise.resolve(false),
  abort(call) {
    calls.get(call)?.abort()
  },
  listenServe(listener) {
    const remote = listener as unknown as Remote<(event: unknown) => void>
    running().onServe((event) => void remote(event).catch(() => {}))
  },
  async stop() {
    clearInterval(ticker)
    await engine?.stop()
    // The host's stats() after stop() are the stopped engine's, as Engine.stats() is.
    await flush().catch(() => {})
  },
}

if (parentPort === null) throw new InternalError('engine-worker.ts runs as a worker thread (createEngine)')
expose(api, nodeEndpoint(parentPort))
