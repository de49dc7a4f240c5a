/**
 * Priorities (QoS): a weighted fair queue in front of one shared resource (a
 * bandwidth limiter, or the memory budget). Each transfer is a flow with a
 * priority; under contention the resource divides between backlogged flows in
 * proportion to their weights, and a flow with nothing waiting gives its share
 * to the others.
 *
 * Self-clocked fair queueing (SCFQ, Golestani 1994): a request of `bytes` from
 * flow f gets the tag `finish = max(V, f.lastFinish) + bytes / weight(f)`; the
 * queue grants the smallest finish tag next and sets V to it. A flow that was
 * idle re-enters at the current V, so it cannot bank credit while idle; a low
 * flow's tag grows 4x as fast as a high one's but still comes due, so no flow
 * starves. One request is granted at a time: the order of grants, not their
 * overlap, is what divides the resource.
 */
import { engineDefaults } from '../engine/config/resolve.ts'
import { AbortedError, ConfigInvalidError, InvalidArgumentError } from '../errors.ts'
import { throwIfAborted } from '../util/abort.ts'
import { checkBytes } from './memory-budget.ts'
import type { RateLimiter, TakeOptions } from './rate-limit.ts'

export type Priority = 'high' | 'normal' | 'low'

export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low']

/** Share of the resource per priority under contention: the engine's `priorityWeights` defaults. */
export const defaultPriorityWeights: Readonly<Record<Priority, number>> = engineDefaults.priorityWeights

export interface FairQueueOptions<T> {
  /** Takes `bytes` from the shared resource; the queue calls it for one request at a time. */
  grant: (bytes: number, signal: AbortSignal) => Promise<T>
  /** @default defaultPriorityWeights */
  weights?: Partial<Record<Priority, number>>
  /** Requests waiting across all flows; more are refused with InvalidArgumentError. @default 65_536 */
  maxWaiting?: number
  /** Gives back a grant whose requester aborted meanwhile (e.g. `(lease) => lease.release()`). @default none */
  discard?: (granted: T) => void
}

interface Request<T> {
  readonly flow: FairFlow<T>
  readonly bytes: number
  readonly finish: number
  readonly seq: number
  readonly resolve: (v: T) => void
  readonly reject: (err: unknown) => void
  readonly signal: AbortSignal | undefined
  readonly abort: AbortController
  onAbort: (() => void) | undefined
  done: boolean
}

export function verifyWeights(w: Record<Priority, number>): void {
  for (const p of PRIORITIES) {
    const v = w[p]
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw new ConfigInvalidError(`priority weight ${p} must be a positive number, got ${v}`)
    }
  }
}

export class FairQueue<T = void> {
  readonly weights: Readonly<Record<Priority, number>>
  readonly #grant: (bytes: number, signal: AbortSignal) => Promise<T>
  readonly #maxWaiting: number
  readonly #discard: ((granted: T) => void) | undefined
  /** Waiting requests; a flat array scanned for the smallest tag (flows are few per grant, and this stays simple). */
  readonly #waiting: Array<Request<T>> = []
  #virtual = 0
  #seq = 0
  #busy = false

  constructor(opts: FairQueueOptions<T>) {
    this.weights = { ...defaultPriorityWeights, ...opts.weights }
    verifyWeights(this.weights)
    this.#maxWaiting = opts.maxWaiting ?? 65_536
    if (!Number.isSafeInteger(this.#maxWaiting) || this.#maxWaiting < 1) {
      throw new ConfigInvalidError(`maxWaiting must be a positive integer, got ${opts.maxWaiting}`)
    }
    this.#grant = opts.grant
    this.#discard = opts.discard
  }

  /** A new flow (one per transfer). Close it when the transfer ends. */
  flow(priority: Priority = 'normal'): FairFlow<T> {
    if (!PRIORITIES.includes(priority)) throw new InvalidArgumentError(`unknown priority ${priority}`)
    return new FairFlow(this, priority)
  }

  get waiting(): number {
    return this.#waiting.length
  }

  /** @internal through FairFlow.take */
  enqueue(flow: FairFlow<T>, bytes: number, opts: TakeOptions): Promise<T> {
    checkBytes(bytes)
    throwIfAborted(opts.signal)
    if (flow.closed) throw new InvalidArgumentError('the flow is closed')
    if (this.#waiting.length >= this.#maxWaiting) {
      throw new InvalidArgumentError(`more than ${this.#maxWaiting} requests waiting for a fair share`)
    }
    const start = Math.max(this.#virtual, flow.lastFinish)
    // A zero-byte request still costs a little, so it cannot jump the queue forever.
    const finish = start + Math.max(bytes, 1) / this.weights[flow.priority]
    flow.lastFinish = finish
    return new Promise<T>((resolve, reject) => {
      const req: Request<T> = {
        flow,
        bytes,
        finish,
        seq: this.#seq++,
        resolve,
        reject,
        signal: opts.signal,
        abort: new AbortController(),
        onAbort: undefined,
        done: false,
      }
      if (opts.signal !== undefined) {
        req.onAbort = () => {
          const i = this.#waiting.indexOf(req)
          if (i >= 0) this.#waiting.splice(i, 1)
          // A request being granted right now is aborted in the resource too.
          req.abort.abort(opts.signal?.reason)
          this.#settle(req, () => {
            throw new AbortedError(undefined, { cause: opts.signal?.reason })
          })
        }
        opts.signal.addEventListener('abort', req.onAbort, { once: true })
      }
      this.#waiting.push(req)
      void this.#pump()
    })
  }

  async #pump(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      for (;;) {
        const req = this.#next()
        if (req === undefined) return
        this.#virtual = Math.max(this.#virtual, req.finish)
        try {
          const v = await this.#grant(req.bytes, req.abort.signal)
          // Aborted while the resource was granting: give back what it granted (e.g. release a lease).
          if (req.done) this.#discard?.(v)
          else this.#settle(req, () => v)
        } catch (err) {
          this.#settle(req, () => {
            throw err
          })
        }
        // Let the flow just served queue its next request before choosing: otherwise a busy
        // flow is never waiting at decision time and the weights decay to round robin.
        await new Promise<void>((r) => setImmediate(r))
      }
    } finally {
      this.#busy = false
    }
  }

  #next(): Request<T> | undefined {
    let best = -1
    for (let i = 0; i < this.#waiting.length; i++) {
      const r = this.#waiting[i]!
      const b = this.#waiting[best]
      if (b === undefined || r.finish < b.finish || (r.finish === b.finish && r.seq < b.seq)) best = i
    }
    if (best < 0) return undefined
    return this.#waiting.splice(best, 1)[0]
  }

  #settle(req: Request<T>, outcome: () => T): void {
    if (req.done) return
    req.done = true
    if (req.onAbort !== undefined) req.signal?.removeEventListener('abort', req.onAbort)
    try {
      const v = outcome()
      req.flow.granted += req.bytes
      req.resolve(v)
    } catch (err) {
      req.reject(err)
    }
  }
}

/** One transfer's place in a FairQueue. A `FairFlow<void>` is a RateLimiter, so it chains with buckets. */
export class FairFlow<T = void> {
  readonly priority: Priority
  readonly #queue: FairQueue<T>
  /** @internal finish tag of this flow's latest request */
  lastFinish = 0
  /** Bytes granted to this flow so far. */
  granted = 0
  closed = false

  constructor(queue: FairQueue<T>, priority: Priority) {
    this.#queue = queue
    this.priority = priority
  }

  take(bytes: number, opts: TakeOptions = {}): Promise<T> {
    try {
      return this.#queue.enqueue(this, bytes, opts)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Further takes are refused; waiting ones still complete or abort through their signals. */
  close(): void {
    this.closed = true
  }
}

/** A weighted fair share of a rate limiter: `fairLimiter(globalBucket).flow('high')` is a RateLimiter. */
export function fairLimiter(
  shared: RateLimiter,
  opts: Omit<FairQueueOptions<void>, 'grant'> = {},
): FairQueue<void> {
  return new FairQueue<void>({ ...opts, grant: (bytes, signal) => shared.take(bytes, { signal }) })
}
