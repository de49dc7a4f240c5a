/**
 * Ctrl-C and SIGTERM as a command sees them: the first one aborts `signal` and the command stops
 * cleanly; repeats are ignored while it does, because the same Ctrl-C can arrive twice (the
 * terminal signals the whole process group, and the `haul` bin re-run under the pinned Node
 * forwards it to the child as well). One more a second or later after the first is a user who
 * insists: the process exits at once with 130.
 */
export class StopSignals {
  readonly #controller = new AbortController()
  #first = 0
  /** The signal that stopped the command, once one has. */
  received: NodeJS.Signals | undefined

  readonly #on = (name: NodeJS.Signals): void => {
    const now = Date.now()
    if (this.received === undefined) {
      this.received = name
      this.#first = now
      this.#controller.abort()
    } else if (now - this.#first >= 1000) {
      process.exit(130)
    }
  }

  constructor() {
    process.on('SIGINT', this.#on)
    process.on('SIGTERM', this.#on)
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  get stopped(): boolean {
    return this.#controller.signal.aborted
  }

  /** Resolves at the first signal. */
  wait(): Promise<void> {
    const { signal } = this.#controller
    if (signal.aborted) return Promise.resolve()
    return new Promise((r) => signal.addEventListener('abort', () => r(), { once: true }))
  }

  dispose(): void {
    process.off('SIGINT', this.#on)
    process.off('SIGTERM', this.#on)
  }
}
