import type { DescriptorHeader } from '../descriptor/header.ts'
import { VerifiedLeafTable } from '../descriptor/verified.ts'
import { bytesEqual } from '../merkle/hash.ts'
import type { Journal } from '../storage/journal.ts'
import type { PartFile } from '../storage/part-file.ts'
import type { ProgressMeter } from '../transfer/progress.ts'
import { type FetchContext, fetchLeafPages } from './fetch-context.ts'
import type { RehashRanges } from './resume.ts'

/**
 * Re-hashes chunks of a part file against leaves fetched through the verified leaf table, in
 * the worker pool: in a range of chunks no journal vouches for (the journal was missing,
 * damaged, or described another file) it records the ones that match; in a range of `kept`
 * chunks (a journal after a crash, when anything may have written the part file before the
 * restart), it takes back from the journal the ones that do not. Nothing is trusted that was
 * not hashed: a chunk that does not match is simply fetched later. It remembers where it got
 * to, so a transfer that reconnects mid-way continues rather than starting over.
 */
export class Rehasher {
  readonly #header: DescriptorHeader
  readonly #part: PartFile
  readonly #journal: Journal
  readonly #meter: ProgressMeter
  readonly #ranges: RehashRanges
  #range = 0
  #next: number

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
  }

  get done(): boolean {
    return this.#range >= this.#ranges.length
  }

  async run(ctx: FetchContext, signal: AbortSignal): Promise<void> {
    const table = new VerifiedLeafTable(this.#header, { maxCachedPages: 2 * ctx.limits.pagesPerRequest })
    // Enough hashes in flight to keep every worker busy while the next chunk is read.
    const maxInflight = Math.max(2, ctx.pool.threads * 2)
    const inflight = new Set<Promise<void>>()
    /** Chunks handed to a task that has not finished well: where to pick up after a failure. */
    const open = new Set<number>()
    let failure: unknown
    try {
      while (this.#range < this.#ranges.length && failure === undefined) {
        signal.throwIfAborted()
        const r = this.#ranges[this.#range]!
        if (this.#next >= r.end) {
          this.#range++
          this.#next = this.#ranges[this.#range]?.start ?? 0
          continue
        }
        const i = this.#next
        const kept = r.kept === true
        if (this.#journal.has(i) !== kept) {
          this.#next++
          continue
        }
        const page = table.pageOf(i)
        if (!table.has(page)) await fetchLeafPages(ctx, table, page, signal)
        const entry = table.get(i)!
        while (inflight.size >= maxInflight) await Promise.race(inflight)
        const lease = await ctx.budget.acquire(entry.length, { signal })
        open.add(i)
        const t = (async () => {
          try {
            const buf = new Uint8Array(entry.length)
            await this.#part.read(entry.offset, buf)
            const { hash } = await ctx.pool.hash(buf, { signal })
            const matches = bytesEqual(hash, entry.hash)
            if (matches && !kept) {
              const wait = this.#journal.record(i, entry.length)
              this.#meter.keep(entry.length)
              await wait
            } else if (!matches && kept) {
              this.#journal.forget(i, entry.length)
              this.#meter.unkeep(entry.length)
            }
            open.delete(i)
          } finally {
            lease.release()
          }
        })().catch((err) => {
          failure ??= err
        })
        inflight.add(t)
        void t.finally(() => inflight.delete(t))
        this.#next++
      }
    } catch (err) {
      failure ??= err
    }
    await Promise.allSettled(inflight)
    if (failure !== undefined) {
      if (open.size > 0) this.#next = Math.min(this.#next, ...open)
      throw failure
    }
  }
}
