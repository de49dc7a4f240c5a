import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ConfigInvalidError } from '../errors.ts'

/** What GcAssist reads and does; V8's own by default, injected in tests. */
export interface GcAssistHooks {
  /** External (ArrayBuffer and other off-heap) memory V8 accounts for, in bytes. */
  readExternal(): number
  /** Starts a full collection. */
  collect(): void
}

/** How often the external memory is read (a cheap call). */
export const GC_ASSIST_CHECK_MS = 20
/** Smallest step accepted: below it the process would do little but collect. */
export const MIN_GC_ASSIST_BYTES = 4 * 1024 * 1024

export function verifyGcAssistBytes(bytes: number): void {
  if (!Number.isInteger(bytes) || (bytes !== 0 && bytes < MIN_GC_ASSIST_BYTES)) {
    throw new ConfigInvalidError(
      `gcAssistBytes must be 0 (off) or an integer of at least ${MIN_GC_ASSIST_BYTES}, got ${bytes}`,
    )
  }
}

/**
 * Collects garbage early when ArrayBuffer memory piles up (opt-in: `gcAssistBytes`).
 *
 * Why: every network read and every Noise message is a fresh ArrayBuffer from the C
 * allocator, ~2x the data rate on a receiver. Many outlive two scavenges, so only a full
 * GC frees them, and V8 starts one only once external memory has grown ~64 MB since the
 * last; glibc then keeps its heap at that high-water mark. At 1,000 concurrent transfers
 * that slack is most of what the receiver holds over the memory budget (README, Many
 * transfers). Collecting at a smaller step lowers the mark, at the cost of a full GC each
 * time (~40 ms on that receiver's heap here): a memory-for-CPU trade the application makes.
 *
 * It affects the whole process (GC is per isolate), which is why it is off by default.
 */
export class GcAssist {
  readonly #step: number
  readonly #hooks: GcAssistHooks
  #floor: number
  #collections = 0
  #timer: NodeJS.Timeout | undefined

  constructor(stepBytes: number, hooks: GcAssistHooks = v8Hooks()) {
    verifyGcAssistBytes(stepBytes)
    this.#step = stepBytes
    this.#hooks = hooks
    this.#floor = hooks.readExternal()
  }

  /** Full collections this assist started. */
  get collections(): number {
    return this.#collections
  }

  /**
   * One check: collects when external memory is `step` above the lowest level seen since the
   * last collection (what was live then, roughly).
   */
  check(): void {
    const now = this.#hooks.readExternal()
    if (now < this.#floor) this.#floor = now
    else if (now - this.#floor >= this.#step) {
      this.#hooks.collect()
      this.#collections++
      this.#floor = this.#hooks.readExternal()
    }
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => this.check(), GC_ASSIST_CHECK_MS)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}

let gcFunction: ((opts: { type: 'major'; execution: 'async' }) => unknown) | undefined

/**
 * V8's own readings, and its `gc` function. The flag makes new contexts get `gc`; the main
 * context (and so the application's globals) does not change.
 */
function v8Hooks(): GcAssistHooks {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc')
    gcFunction = runInNewContext('gc') as typeof gcFunction
  }
  const gc = gcFunction!
  return {
    readExternal: () => getHeapStatistics().external_memory,
    // Async: V8 runs it from a task of its own, not inside this timer's callback.
    collect: () => void gc({ type: 'major', execution: 'async' }),
  }
}
