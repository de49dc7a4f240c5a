/**
 * The engine's open file handles for what it serves: published files, their descriptors and
 * collections' files, opened on demand and shared under one bound (`server.maxOpenFiles`). Without
 * it every published file would hold its descriptor and its source open for as long as it is
 * published, and a process publishing a few hundred files would run out of descriptors (EMFILE)
 * for everything else it does, its fetches included.
 *
 * Beyond the bound the least recently used idle handle is closed; a handle in use is closed only
 * once its last user releases it, so a read never sees its handle closed under it. The bound is
 * exceeded only by handles in use, which the reads in flight bound. Whoever reopens a file checks
 * it is still the file it opened first (see SourceFile, DescriptorReader).
 */

import { InvalidArgumentError } from '../errors.ts'

/** What an OpenFiles holds: a file handle, or a few for one file (a SourceFile's direct reads). */
export interface OpenHandle {
  close(): void | Promise<void>
}

/** Names a handle: its owner (a SourceFile, a reader, a pack) and which of its files. */
type Slot = number

interface Entry {
  readonly owner: object
  readonly slot: Slot
  /** Settled once the file is open; shared by every user that asks meanwhile. */
  readonly opening: Promise<OpenHandle>
  users: number
  /** Out of the cache: closed once its last user is done. */
  evicted: boolean
}

export class OpenFiles {
  readonly limit: number
  /** Every cached entry, least recently used first. */
  readonly #lru = new Set<Entry>()
  readonly #byOwner = new Map<object, Map<Slot, Entry>>()

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new InvalidArgumentError(
        `open files: the limit must be a whole number of at least 1, got ${limit}`,
      )
    this.limit = limit
  }

  /** Handles cached (open, or being opened); evicted ones still in use come on top. */
  get size(): number {
    return this.#lru.size
  }

  /**
   * Runs `use` with `owner`'s handle on file `slot`, opened by `open` when it is not open: a
   * reopen included, so `open` checks the file is still the one expected. The handle is not closed
   * before `use` settles.
   */
  async use<H extends OpenHandle, T>(
    owner: object,
    slot: Slot,
    open: () => H | Promise<H>,
    use: (handle: H) => T | Promise<T>,
  ): Promise<T> {
    const entry = this.#acquire(owner, slot, open)
    try {
      const handle = (await entry.opening) as H
      return await use(handle)
    } finally {
      this.#release(entry)
    }
  }

  /** Closes `owner`'s handles (those in use once their users are done). */
  async forget(owner: object): Promise<void> {
    const slots = this.#byOwner.get(owner)
    if (slots === undefined) return
    this.#byOwner.delete(owner)
    const closing: Promise<void>[] = []
    for (const e of slots.values()) {
      this.#lru.delete(e)
      closing.push(this.#evict(e))
    }
    await Promise.all(closing)
  }

  #acquire(owner: object, slot: Slot, open: () => OpenHandle | Promise<OpenHandle>): Entry {
    let slots = this.#byOwner.get(owner)
    let entry = slots?.get(slot)
    if (entry !== undefined) {
      // Most recently used last.
      this.#lru.delete(entry)
      this.#lru.add(entry)
      entry.users++
      return entry
    }
    const opening = (async () => open())()
    const e: Entry = { owner, slot, opening, users: 1, evicted: false }
    entry = e
    opening.catch(() => {
      // A failed open is not cached: the next use tries again.
      if (this.#byOwner.get(owner)?.get(slot) === e) this.#remove(e)
    })
    if (slots === undefined) {
      slots = new Map()
      this.#byOwner.set(owner, slots)
    }
    slots.set(slot, entry)
    this.#lru.add(entry)
    this.#trim()
    return entry
  }

  #release(entry: Entry): void {
    entry.users--
    if (entry.users > 0) return
    if (entry.evicted) void this.#close(entry)
    else this.#trim()
  }

  /** Closes least recently used idle handles while over the limit. */
  #trim(): void {
    if (this.#lru.size <= this.limit) return
    for (const e of this.#lru) {
      if (this.#lru.size <= this.limit) break
      if (e.users > 0) continue
      this.#remove(e)
      void this.#evict(e)
    }
  }

  #remove(e: Entry): void {
    this.#lru.delete(e)
    const slots = this.#byOwner.get(e.owner)
    if (slots?.get(e.slot) !== e) return
    slots.delete(e.slot)
    if (slots.size === 0) this.#byOwner.delete(e.owner)
  }

  /** Closes `e` now when idle, else once its users are done. */
  async #evict(e: Entry): Promise<void> {
    if (e.evicted) return
    e.evicted = true
    if (e.users === 0) await this.#close(e)
  }

  async #close(e: Entry): Promise<void> {
    const handle = await e.opening.catch(() => undefined)
    try {
      await handle?.close()
    } catch {
      // Closing a read-only handle has nothing to lose.
    }
  }
}
