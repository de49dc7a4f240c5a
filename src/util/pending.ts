/**
 * Promises under way, each forgotten once it settles: what a stop waits for. `settled()` waits
 * until none is left, those added while it waits included. Holds one entry per promise not yet
 * settled, so its size is what its owner lets run at once.
 */
export class Pending<T = unknown> {
  readonly #live = new Set<Promise<T>>()

  /** Tracks `p` until it settles; returns it. */
  add(p: Promise<T>): Promise<T> {
    this.#live.add(p)
    const forget = (): void => {
      this.#live.delete(p)
    }
    p.then(forget, forget)
    return p
  }

  /** Resolves once every promise added, before or during the wait, has settled. */
  async settled(): Promise<void> {
    while (this.#live.size > 0) await Promise.allSettled([...this.#live])
  }
}
