/**
 * What stops a command: Ctrl-C, SIGTERM, SIGHUP (the terminal closed), or its output closed under
 * it (`haul get … | head -1`: a write to stdout or stderr failed, EPIPE). The first aborts
 * `signal` and the command stops cleanly, as it does for Ctrl-C: a fetch seals its journal and
 * releases its lock. Repeats are ignored while it does, because the same Ctrl-C can arrive twice
 * (the terminal signals the whole process group, and the `haul` bin re-run under the pinned Node
 * forwards it to the child as well). One more signal a second or later after the first is a user
 * who insists: the process exits at once with 130.
 */
export type StopReason = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'output-closed'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** The commands' stop signals now listening (one at a time in practice). */
const live = new Set<StopSignals>()
/** stdout and stderr once a write to them failed: nothing more is written there. */
const closed = new Set<NodeJS.WriteStream>()
/** What stopped the process's command first: a signal that came after its output closed does not change the exit code. */
let first: StopReason | undefined

/**
 * Listens for failed writes to stdout and stderr for the life of the process. Without a
 * listener, a closed pipe's EPIPE is an unhandled 'error' event: a stack trace and exit 1 with
 * the fetch's lock and unsealed journal left behind, as a crash leaves them.
 */
export function watchOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', () => {
      closed.add(stream)
      first ??= 'output-closed'
      for (const s of live) s.stop('output-closed')
    })
  }
}

/** Whether stdout or stderr was closed under the command before any signal stopped it (exit EXIT.outputClosed). */
export function stoppedByClosedOutput(): boolean {
  return first === 'output-closed'
}

/** Writes `text` to `stream` unless a write to it failed before. */
export function write(stream: NodeJS.WriteStream, text: string): void {
  if (!closed.has(stream)) stream.write(text)
}

export class StopSignals {
  readonly #controller = new AbortController()
  #first = 0
  /** What stopped the command, once something has. */
  received: StopReason | undefined

  readonly #on = (name: NodeJS.Signals): void => {
    if (this.received !== undefined && Date.now() - this.#first >= 1000) process.exit(130)
    this.stop(name as StopReason)
  }

  constructor() {
    for (const sig of SIGNALS) process.on(sig, this.#on)
    live.add(this)
    // Output closed before this command listened: it stops at once rather than run unseen.
    if (closed.size > 0) this.stop('output-closed')
  }

  /** Stops the command for `reason`, the first time only. */
  stop(reason: StopReason): void {
    if (this.received !== undefined) return
    this.received = reason
    first ??= reason
    this.#first = Date.now()
    this.#controller.abort()
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  get stopped(): boolean {
    return this.#controller.signal.aborted
  }

  /** Resolves at the first stop. */
  wait(): Promise<void> {
    const { signal } = this.#controller
    if (signal.aborted) return Promise.resolve()
    return new Promise((r) => signal.addEventListener('abort', () => r(), { once: true }))
  }

  dispose(): void {
    for (const sig of SIGNALS) process.off(sig, this.#on)
    live.delete(this)
  }
}
