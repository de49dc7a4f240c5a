import type { DescriptorHeader } from '../descriptor/header.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import { bytesEqual } from '../merkle/hash.ts'
import type { Journal } from '../storage/journal.ts'
import type { PartFile } from '../storage/part-file.ts'
import type { ProgressMeter } from '../transfer/progress.ts'
import { type FetchContext, fetchLeafPages } from './fetch-context.ts'
import type { RehashRanges } from './resume.ts'

/** One chunk to re-hash; `kept`: the journal counts it until its bytes are found not to match. */
interface Pending {
  readonly i: number
  readonly kept: boolean
}

/**
 * Re-hashes chunks of a part file against leaves fetched through the verified leaf table, in
 * the worker pool: in a range of chunks no journal vouches for (the journal was missing,
 * damaged, or described another file) it records the ones that match; in a range of `kept`
 * chunks (a journal after a crash, when anything may have written the part file before the
 * restart), it takes back from the journal the ones that do not. Nothing is trusted that was
 * not hashed: a chunk that does not match is simply fetched later. It remembers where it got
 * to, so a transfer that reconnects mid-way continues rather than starting over, and hashes no
 * chunk twice. The meter follows the check (ProgressMeter.startCheck) from construction to the
 * end of the last run.
 */
export class Rehasher {
  readonly #header: DescriptorHeader
  readonly #part: PartFile
  readonly #journal: Journal
  readonly #meter: ProgressMeter
  readonly #ranges: RehashRanges
  #range = 0
  #next: number
  /** Chunks a failed run left unhashed (at most its hashes in flight): the next run hashes them first. */
  #redo: Pending[] = []

  constructor(
    header: DescriptorHeader,
    part: PartFile,
    journal: Journal,
    meter: ProgressMeter,
    ranges: RehashRanges,
  ) {
    this.#header = header
    this.#part = part
    this.#journal = journal
    this.#meter = meter
    this.#ranges = ranges.map((r) => ({ ...r }))
    this.#next = ranges[0]?.start ?? 0
    const { bytes, chunks } = checkSize(header, journal, ranges)
    meter.startCheck(bytes, chunks)
  }

  /**
   * Chunks a journal kept are still to be checked (the check stopped, or never started, before
   * their turn). Their journal must not be sealed as a clean stop: the next run would trust them
   * unchecked.
   */
  get keptUnchecked(): boolean {
    if (this.#redo.some((c) => c.kept)) return true
    for (let r = this.#range; r < this.#ranges.length; r++) {
      const range = this.#ranges[r]!
      if (range.kept === true && (r > this.#range || this.#next < range.end)) return true
    }
    return false
  }

  /**
   * Hashes what is left to hash. `report` is told after each chunk, and forced once every chunk
   * is hashed, with the check's last figures, before the meter's check ends.
   */
  async run(ctx: FetchContext, signal: AbortSignal, report: (force: boolean) => void): Promise<void> {
    const table = new VerifiedLeafTable(this.#header, { maxCachedPages: 2 * ctx.limits.pagesPerRequest })
    // Enough hashes in flight to keep every worker busy while the next chunk is read.
    const maxInflight = Math.max(2, ctx.pool.threads * 2)
    const inflight = new Set<Promise<void>>()
    /** Chunks taken and not yet hashed well: the next run's `redo` after a failure. */
    const open = new Map<number, Pending>()
    // Nothing writes the part file during the check: its stamp now dates what the check reads,
    // and how far it got is noted as it goes (a run cut short again resumes there).
    const stamp = this.#journal.persistent ? await this.#part.stamp() : undefined
    let noted = 0
    let checkedSinceNote = 0
    let failure: unknown
    try {
      while (failure === undefined) {
        signal.throwIfAborted()
        const c = this.#take()
        if (c === undefined) break
        const { i, kept } = c
        open.set(i, c)
        const page = table.pageOf(i)
        if (!table.has(page)) await fetchLeafPages(ctx, table, page, signal)
        const entry = table.get(i)!
        while (inflight.size >= maxInflight) await Promise.race(inflight)
        const lease = await ctx.budget.acquire(entry.length, { signal })
        const t = (async () => {
          try {
            const buf = new Uint8Array(entry.length)
            await this.#part.read(entry.offset, buf)
            const { hash } = await ctx.pool.hash(buf, { signal })
            const matches = bytesEqual(hash, entry.hash)
            let wait: Promise<void> | undefined
            if (matches && !kept) {
              wait = this.#journal.record(i, entry.length)
              this.#meter.keep(entry.length)
            } else if (!matches && kept) {
              this.#journal.forget(i, entry.length)
              this.#meter.unkeep(entry.length)
            }
            // Counted once hashed: a chunk recorded before a failed flush is not hashed again.
            this.#meter.checked(entry.length)
            report(false)
            await wait
            open.delete(i)
            checkedSinceNote += entry.length
            if (
              stamp !== undefined &&
              checkedSinceNote >= this.#journal.flushBytes &&
              this.#redo.length === 0
            ) {
              checkedSinceNote = 0
              const through = Math.min(this.#position(), ...open.keys())
              if (through > noted) {
                noted = through
                await this.#journal.noteChecked(through, stamp)
              }
            }
          } finally {
            lease.release()
          }
        })().catch((err) => {
          failure ??= err
        })
        inflight.add(t)
        void t.finally(() => inflight.delete(t))
      }
    } catch (err) {
      failure ??= err
    }
    await Promise.allSettled(inflight)
    if (failure !== undefined) {
      this.#redo = [...open.values()]
      throw failure
    }
    this.#meter.checkComplete()
    report(true)
    this.#meter.endCheck()
  }

  /** The index every chunk of the ranges below which has been taken (in order: ranges ascend). */
  #position(): number {
    return this.#range < this.#ranges.length ? this.#next : Number.MAX_SAFE_INTEGER
  }

  /** The next chunk to hash: one a failed run left first, then the next in the ranges. */
  #take(): Pending | undefined {
    // A chunk left by a failed run may have been settled before it failed (recorded, then the
    // journal's flush failed): the journal says.
    for (let c = this.#redo.shift(); c !== undefined; c = this.#redo.shift()) {
      if (this.#journal.has(c.i) === c.kept) return c
    }
    while (this.#range < this.#ranges.length) {
      const r = this.#ranges[this.#range]!
      if (this.#next >= r.end) {
        this.#range++
        this.#next = this.#ranges[this.#range]?.start ?? 0
        continue
      }
      const i = this.#next++
      const kept = r.kept === true
      if (this.#journal.has(i) === kept) return { i, kept }
    }
    return undefined
  }
}

/**
 * What a check of `ranges` reads: its chunks, and their bytes. Fixed-size chunks have known
 * lengths. Content-defined ones are known only from their leaves, fetched as the check goes: the
 * journal's own chunks, all checked, are its bytes, every chunk of the file is the file's size,
 * and anything else is estimated at the mean chunk size.
 */
function checkSize(
  header: DescriptorHeader,
  journal: Journal,
  ranges: RehashRanges,
): { bytes: number; chunks: number } {
  const { chunking, totalSize, leafCount } = header
  let chunks = 0
  let keptChunks = 0
  let bytes = 0
  for (const r of ranges) {
    const kept = r.kept === true
    for (let i = r.start; i < r.end; i++) {
      if (journal.has(i) !== kept) continue
      chunks++
      if (kept) keptChunks++
      if (chunking.kind === 'fixed') bytes += Math.min(chunking.size, totalSize - i * chunking.size)
    }
  }
  if (chunking.kind === 'fixed') return { bytes, chunks }
  const mean = totalSize / leafCount
  const others = chunks - keptChunks
  bytes =
    (keptChunks === journal.chunks ? journal.bytes : keptChunks * mean) +
    (others === leafCount ? totalSize : others * mean)
  return { bytes: Math.round(bytes), chunks }
}
