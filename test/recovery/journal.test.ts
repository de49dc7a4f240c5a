import { open, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { encodeHeader } from '../../src/descriptor/header.ts'
import { BudgetExceededError, NoSpaceError } from '../../src/errors.ts'
import { sha256 } from '../../src/merkle/hash.ts'
import {
  BLOCK,
  defaultJournalOptions,
  Journal,
  type JournalInit,
  type JournalOptions,
  PAGE_BITS,
} from '../../src/storage/journal.ts'
import { tempDir } from '../support/files.ts'

const MiB = 1024 * 1024

function init(leafCount: number): JournalInit {
  const headerBytes = encodeHeader({
    version: 1,
    chunking: { kind: 'fixed', size: 64 * 1024 },
    totalSize: leafCount * 64 * 1024,
    leafCount,
    pageSize: 1024,
    root: new Uint8Array(32).fill(9),
  })
  return { cid: sha256(headerBytes), headerBytes, leafCount, part: { dev: 1n, ino: 42n } }
}

const opts = (o: Partial<JournalOptions> = {}): JournalOptions => ({
  ...defaultJournalOptions,
  flushIntervalMs: 1_000_000,
  ...o,
})

async function loadOk(path: string, o = opts()) {
  const r = await Journal.load(path, o)
  if (r.status !== 'ok') throw new Error(`expected ok, got ${r.status}`)
  return r
}

/** What a fresh reader sees on disk right now (the journal is closed again). */
async function onDisk(path: string): Promise<{ chunks: number; has: (i: number) => boolean }> {
  const { journal } = await loadOk(path)
  await journal.close()
  return { chunks: journal.chunks, has: (i) => journal.has(i) }
}

/** Flips one byte of the file at `offset`. */
async function flip(path: string, offset: number): Promise<void> {
  const fh = await open(path, 'r+')
  const b = Buffer.alloc(1)
  await fh.read(b, 0, 1, offset)
  b[0]! ^= 0x5a
  await fh.write(b, 0, 1, offset)
  await fh.close()
}

describe('resume journal', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let n = 0
  const path = () => join(dir, `j${n++}.journal`)

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-journal-'))
  })
  afterAll(() => cleanup())

  it('round-trips recorded chunks through flush and load', async () => {
    const p = path()
    const leaves = 3 * PAGE_BITS + 5 // four pages
    const j = await Journal.create(p, init(leaves), opts())
    j.attach(async () => {})
    const marked = [0, 1, 7, PAGE_BITS - 1, PAGE_BITS, 2 * PAGE_BITS + 3, leaves - 1]
    for (const i of marked) await j.record(i, 1000 + i)
    expect(j.chunks).toBe(marked.length)
    await j.flush()
    expect(j.durableChunks).toBe(marked.length)
    await j.close()
    expect((await stat(p)).size).toBe(BLOCK * (1 + 2 * 4))

    const { journal: back, damagedPages } = await loadOk(p)
    expect(damagedPages).toEqual([])
    expect(back.leafCount).toBe(leaves)
    expect(back.chunks).toBe(marked.length)
    expect(back.bytes).toBe(marked.reduce((s, i) => s + 1000 + i, 0))
    for (let i = 0; i < leaves; i++) expect(back.has(i)).toBe(marked.includes(i))
    expect(Buffer.from(back.cid).equals(Buffer.from(init(leaves).cid))).toBe(true)
    expect(back.part).toEqual({ dev: 1n, ino: 42n })
    await back.close()
  })

  it('keptRanges: the runs of durable chunks, as a bit-by-bit reading finds them, at most maxRuns', async () => {
    const leaves = 203 // not a multiple of 8: the last byte is partial
    const j = await Journal.create(path(), init(leaves), opts())
    j.attach(async () => {})
    // Runs across byte edges, whole bytes set, single bits, the very first and last chunks.
    const marked = new Set([
      0,
      1,
      2,
      7,
      8,
      ...Array.from({ length: 40 }, (_, k) => 16 + k),
      63,
      100,
      199,
      200,
      201,
      202,
    ])
    for (const i of marked) await j.record(i, 10)
    await j.flush()
    const naive: Array<{ start: number; end: number }> = []
    for (let i = 0; i < leaves; i++) {
      if (!marked.has(i)) continue
      const last = naive.at(-1)
      if (last !== undefined && last.end === i) last.end = i + 1
      else naive.push({ start: i, end: i + 1 })
    }
    expect(j.keptRanges(Number.POSITIVE_INFINITY)).toEqual(naive)
    // Bounded: past maxRuns - 1 runs, the last spans to the last durable chunk.
    expect(j.keptRanges(3)).toEqual([...naive.slice(0, 2), { start: naive[2]!.start, end: leaves }])
    await j.close()
  })

  it('write-ahead: no bit reaches the journal file before the part file sync returned', async () => {
    const p = path()
    const j = await Journal.create(p, init(100), opts({ flushBytes: 3000 }))
    const seenAtSync: number[] = []
    j.attach(async () => {
      // What is on disk while the part file is being synced: must not yet include this batch.
      seenAtSync.push((await onDisk(p)).chunks)
    })
    expect(j.record(0, 1000)).toBeUndefined()
    expect(j.record(1, 1000)).toBeUndefined() // half of flushBytes: a flush of {0, 1} starts
    expect(j.has(1)).toBe(true) // written, not yet durable, but never fetched again
    await j.record(2, 1000) // 1000 unsynced + 2000 syncing reach flushBytes: waits for {2}
    expect(j.durableChunks).toBe(3)
    await j.record(3, 1000)
    await j.record(4, 1000) // starts {3, 4}
    await j.record(5, 1000) // waits for {5}
    // At each part-file sync the journal holds only the batches before it: {0,1} {2} {3,4} {5}.
    expect(seenAtSync).toEqual([0, 2, 3, 5])
    expect((await onDisk(p)).chunks).toBe(6)
    await j.close()
  })

  it('a flush starts in the background at half of flushBytes; recording waits only at flushBytes', async () => {
    const p = path()
    const j = await Journal.create(p, init(10), opts({ flushBytes: 4000 }))
    const syncs: Array<() => void> = []
    j.attach(() => new Promise<void>((resolve) => syncs.push(resolve)))
    expect(j.record(0, 1000)).toBeUndefined()
    expect(syncs.length).toBe(0)
    expect(j.record(1, 1000)).toBeUndefined() // 2000 of 4000: the flush starts, nobody waits
    expect(syncs.length).toBe(1)
    expect(j.record(2, 1000)).toBeUndefined() // 1000 unsynced + 2000 syncing: still under the bound
    expect(syncs.length).toBe(1) // one flush at a time
    let waited = false
    const blocked = j.record(3, 1000)?.then(() => {
      waited = true
    }) // 2000 + 2000 reach the bound: this one waits
    expect(blocked).toBeDefined()
    await new Promise((r) => setTimeout(r, 20))
    expect(waited).toBe(false)
    syncs.shift()!() // the first sync returns; the queued flush of {2, 3} starts
    await vi.waitFor(() => expect(syncs.length).toBe(1))
    expect(waited).toBe(false)
    syncs.shift()!()
    await blocked
    expect(j.durableChunks).toBe(4)
    expect((await onDisk(p)).chunks).toBe(4)
    await j.close()
  })

  it('a failed part-file sync persists nothing; the chunks are flushed by the next sync', async () => {
    const p = path()
    const j = await Journal.create(p, init(10), opts({ flushBytes: 1 }))
    let fail = true
    j.attach(async () => {
      if (fail) throw new NoSpaceError('disk full')
    })
    await expect(j.record(3, 10)).rejects.toBeInstanceOf(NoSpaceError)
    expect(j.has(3)).toBe(true)
    expect((await onDisk(p)).chunks).toBe(0)
    fail = false
    await j.flush()
    expect((await onDisk(p)).has(3)).toBe(true)
    await j.close()
  })

  it('a torn write of the newest slot falls back to the previous generation', async () => {
    const p = path()
    const j = await Journal.create(p, init(50), opts())
    j.attach(async () => {})
    await j.record(1, 10)
    await j.flush() // generation 1 → slot 1
    await j.record(2, 10)
    await j.flush() // generation 2 → slot 0
    await j.close()
    await flip(p, BLOCK * 1 + 100) // page 0, slot 0: the newest
    const { journal, damagedPages } = await loadOk(p)
    expect(damagedPages).toEqual([])
    expect(journal.has(1)).toBe(true)
    expect(journal.has(2)).toBe(false) // lost work, never a wrong bit
    await journal.close()
  })

  it('a page with both slots damaged is reported (its chunks get re-hashed), the others load', async () => {
    const p = path()
    const j = await Journal.create(p, init(2 * PAGE_BITS), opts())
    j.attach(async () => {})
    await j.record(5, 10)
    await j.record(PAGE_BITS + 5, 10)
    await j.close()
    await flip(p, BLOCK * 1 + 40) // page 0 slot 0
    await flip(p, BLOCK * 2 + 40) // page 0 slot 1
    const { journal, damagedPages } = await loadOk(p)
    expect(damagedPages).toEqual([0])
    expect(journal.pageRange(0)).toEqual({ start: 0, end: PAGE_BITS })
    expect(journal.has(5)).toBe(false)
    expect(journal.has(PAGE_BITS + 5)).toBe(true)
    await journal.close()
  })

  it('a damaged superblock, a truncated file or a foreign file make the whole journal untrusted', async () => {
    const p = path()
    const j = await Journal.create(p, init(10), opts())
    await j.close()
    await flip(p, 60)
    expect((await Journal.load(p, opts())).status).toBe('damaged')

    const q = path()
    await (await Journal.create(q, init(10), opts())).close()
    const bytes = await readFile(q)
    await writeFile(q, bytes.subarray(0, bytes.length - 1))
    expect(await Journal.load(q, opts())).toMatchObject({ status: 'damaged' })

    const r = path()
    await writeFile(r, Buffer.alloc(3 * BLOCK, 7))
    expect(await Journal.load(r, opts())).toMatchObject({ status: 'damaged' })
    expect(await Journal.load(join(dir, 'none'), opts())).toEqual({ status: 'missing' })
  })

  it('refuses to track more chunks than journal.maxChunks, before allocating', async () => {
    await expect(Journal.create(path(), init(5000), opts({ maxChunks: 4096 }))).rejects.toBeInstanceOf(
      BudgetExceededError,
    )
    const p = path()
    await (await Journal.create(p, init(5000), opts())).close()
    await expect(Journal.load(p, opts({ maxChunks: 4096 }))).rejects.toBeInstanceOf(BudgetExceededError)
  })

  it('sizes: 10M chunks (10 TiB at 1 MiB) cost 1.2 MiB of memory and 2.5 MiB of disk; a flush rewrites only changed pages', async () => {
    const p = path()
    const leaves = 10_000_000
    const j = await Journal.create(p, init(leaves), opts({ flushBytes: 1024 * MiB }))
    j.attach(async () => {})
    const size = (await stat(p)).size
    expect(size).toBeLessThan(2.6 * MiB)
    // Mark chunks in one page only and check only that page's slot changed on disk.
    const before = await readFile(p)
    for (let i = 100; i < 200; i++) j.record(i, MiB)
    await j.flush()
    const after = await readFile(p)
    const changed = new Set<number>()
    for (let b = 0; b < before.length; b += BLOCK) {
      if (!before.subarray(b, b + BLOCK).equals(after.subarray(b, b + BLOCK))) changed.add(b / BLOCK)
    }
    expect([...changed]).toEqual([2]) // page 0, slot 1 (generation 1)
    await j.close()
    const { journal } = await loadOk(p)
    expect(journal.chunks).toBe(100)
    expect(journal.bytes).toBe(100 * MiB)
    await journal.close()
  })

  it('an in-memory journal (journal.enabled = false) tracks chunks and writes nothing', async () => {
    const j = Journal.memory(init(10), opts())
    expect(j.persistent).toBe(false)
    expect(j.record(4, 5)).toBeUndefined()
    expect(j.has(4)).toBe(true)
    await j.flush()
    expect(j.chunks).toBe(1)
  })
})
