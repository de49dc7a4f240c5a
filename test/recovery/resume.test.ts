import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentNotFoundError, DestinationExistsError } from '../../src/errors.ts'
import { createEngine, type Engine, type ResumeInfo } from '../../src/index.ts'
import {
  BLOCK,
  defaultJournalOptions,
  Journal,
  type JournalInit,
  journalPath,
} from '../../src/storage/journal.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import type { CheckProgress, TransferProgress } from '../../src/transfer/progress.ts'
import type { ChunkingParams } from '../../src/types.ts'
import { journalSuperblock, noteCheckedThrough, unsealJournal } from '../support/crash.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { interruptedFetch } from '../support/interrupt.ts'
import { startSender } from '../support/sender.ts'
import { servedBytes } from '../support/served.ts'
import { eventually } from '../support/wait.ts'

const MiB = 1024 * 1024
const SIZE = 20 * MiB + 4321

describe.each<[string, ChunkingParams]>([
  ['fixed 1 MiB', { kind: 'fixed', size: MiB }],
  ['cdc', { kind: 'cdc', minSize: 128 * 1024, avgSize: 512 * 1024, maxSize: 2 * MiB }],
])('resume (%s chunks)', (_, chunking) => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  let receiver: Engine
  const served = servedBytes()
  let ticket: string
  let src: string
  let srcHash: string
  let n = 0

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-resume-'))
    sender = await startSender({ chunking, wrap: served.wrap })
    src = join(dir, 'src.bin')
    await writeFile(src, SIZE, 'random')
    srcHash = await sha256File(src)
    ticket = await sender.publish(src)
    receiver = await createEngine({ workers: 1, fetch: { windowBytes: 4 * MiB } })
  })
  afterAll(async () => {
    await receiver.stop()
    await sender.stop()
    await cleanup()
  })

  const interrupt = (dest: string, at = SIZE / 2) =>
    interruptedFetch({ ticket, senderAddrs: sender.network.addresses, dest, atBytes: at })

  /**
   * Fetches directly; returns the result, the chunk bytes the sender served for it and what
   * onResume said.
   */
  async function fetchCounting(dest: string, t = ticket) {
    const before = served.bytes
    const resumed: Array<{ info: ResumeInfo; progress: TransferProgress }> = []
    const progress: TransferProgress[] = []
    const r = await receiver.fetch(t, dest, {
      onResume: (info, progress) => resumed.push({ info, progress }),
      onProgress: (p) => progress.push(p),
    }).result
    expect(await sha256File(dest)).toBe(srcHash)
    expect(existsSync(`${dest}.part`)).toBe(false)
    expect(existsSync(journalPath(dest))).toBe(false)
    // The rate is of what this run fetched, not of the bytes an earlier run left.
    expect(r.rate * r.seconds).toBeCloseTo(SIZE - r.resume.bytesKept, 0)
    return { r, served: served.bytes - before, resumed, progress }
  }

  /**
   * The check of what an earlier run left, as onProgress showed it: from nothing checked up to
   * its totals, never the same figures twice, all before anything was fetched. Returns its last
   * figures.
   */
  function checkShown(progress: readonly TransferProgress[]): CheckProgress {
    const during = progress.findIndex((p) => p.check === undefined)
    expect(during).toBeGreaterThan(0)
    const checks = progress.slice(0, during).map((p) => p.check!)
    expect(progress.slice(during).every((p) => p.check === undefined)).toBe(true)
    expect(progress.slice(0, during).every((p) => p.bytesDone === p.keptBytes)).toBe(true)
    expect(checks[0]).toMatchObject({ bytesChecked: 0, chunksChecked: 0 })
    for (let i = 1; i < checks.length; i++) {
      expect(checks[i]!.chunksChecked).toBeGreaterThan(checks[i - 1]!.chunksChecked)
      expect(checks[i]!.bytesChecked).toBeGreaterThanOrEqual(checks[i - 1]!.bytesChecked)
    }
    const last = checks.at(-1)!
    expect(last.chunksChecked).toBe(last.chunksToCheck)
    expect(last.bytesChecked).toBe(last.bytesToCheck)
    return last
  }

  it('after a crash (its journal unsealed) the kept chunks are checked before the rest is fetched, the check shown up to its total', async () => {
    const dest = join(dir, `u${n++}.out`)
    await interrupt(dest)
    await unsealJournal(dest)
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    if (loaded.status !== 'ok') throw new Error(`journal ${loaded.status}`)
    const { chunks, bytes } = loaded.journal
    await loaded.journal.close()
    expect(chunks).toBeGreaterThan(1)
    // One kept chunk no longer holds its bytes: checked all the same, then fetched again.
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from('ROT'), 0, 3, 5)
    await fh.close()
    const { r, progress, served: got } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'journal', reason: 'unclean-stop', chunksKept: chunks - 1 })
    expect(checkShown(progress)).toMatchObject({
      chunksChecked: chunks,
      chunksToCheck: chunks,
      bytesChecked: bytes,
      bytesToCheck: bytes,
    })
    // What the check took back was fetched again; the rest of what was kept was not.
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('an interrupted fetch resumes from its journal: only the missing chunks are fetched', async () => {
    const dest = join(dir, `a${n++}.out`)
    const done = await interrupt(dest)
    expect(done).toBeGreaterThanOrEqual(SIZE / 2)
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    expect(loaded.status).toBe('ok')
    if (loaded.status === 'ok') await loaded.journal.close()
    const { r, served: got, resumed } = await fetchCounting(dest)
    expect(r.resume.mode).toBe('journal')
    // Announced as it starts: what is kept, already counted as done.
    expect(resumed).toHaveLength(1)
    expect(resumed[0]!.info).toEqual(r.resume)
    expect(resumed[0]!.progress).toMatchObject({
      bytesDone: r.resume.bytesKept,
      keptBytes: r.resume.bytesKept,
      totalBytes: SIZE,
    })
    // The cancel flushed everything written, including chunks that landed after the last progress report.
    expect(r.resume.bytesKept).toBeGreaterThanOrEqual(done)
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('journal missing: the part file is re-hashed, good chunks kept, a corrupted one fetched again', async () => {
    const dest = join(dir, `b${n++}.out`)
    await interrupt(dest)
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    if (loaded.status !== 'ok') throw new Error('no journal after the interrupted fetch')
    const journaled = loaded.journal.bytes
    expect(loaded.journal.has(0)).toBe(true)
    await loaded.journal.close()
    await unlink(journalPath(dest))
    // Damage a byte in the first chunk: the re-hash must not keep it.
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from([0xee]), 0, 1, 1000)
    await fh.close()
    const servedBefore = served.indices.length
    const { r, served: got, resumed, progress } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'journal-missing' })
    // Every chunk of the part file is checked.
    expect(checkShown(progress)).toMatchObject({
      chunksToCheck: progress[0]!.totalChunks,
      bytesToCheck: SIZE,
    })
    // Announced before the re-hash: nothing kept yet.
    expect(resumed.map((x) => [x.info.mode, x.info.bytesKept, x.progress.keptBytes])).toEqual([
      ['rehash', 0, 0],
    ])
    expect(r.resume.bytesKept).toBeGreaterThan(0)
    // Chunk 0 was not kept: it was fetched again. (The re-hash may keep more than the journal
    // named: chunks written after its last flush verify too.)
    expect(served.indices.slice(servedBefore)).toContain(0)
    expect(journaled).toBeGreaterThan(0)
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('journal damaged: same as missing, reported as journal-damaged', async () => {
    const dest = join(dir, `c${n++}.out`)
    await interrupt(dest)
    const jp = journalPath(dest)
    const bytes = await readFile(jp)
    bytes[20]! ^= 0xff
    const fh = await open(jp, 'r+')
    await fh.write(bytes, 0, 64, 0)
    await fh.close()
    const { r, served: got } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'journal-damaged' })
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('a bitmap page with both slots torn: the journal is kept, the chunks of that page are re-hashed', async () => {
    const dest = join(dir, `g${n++}.out`)
    await interrupt(dest)
    const jp = journalPath(dest)
    const fh = await open(jp, 'r+')
    // Page 0's two slots are blocks 1 and 2; break a byte in each.
    for (const at of [BLOCK + 40, 2 * BLOCK + 40]) await fh.write(Buffer.from([0xa5]), 0, 1, at)
    await fh.close()
    const { r, served: got } = await fetchCounting(dest)
    expect(r.resume.mode).toBe('journal')
    expect(r.resume.bytesKept).toBeGreaterThan(0) // found again by re-hashing
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('a part file replaced behind the journal (another inode) is re-hashed, not trusted', async () => {
    const dest = join(dir, `d${n++}.out`)
    await interrupt(dest)
    await copyFile(`${dest}.part`, `${dest}.copy`)
    await rename(`${dest}.copy`, `${dest}.part`)
    const { r } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'part-replaced' })
    expect(r.resume.bytesKept).toBeGreaterThan(0)
  })

  it('a part file written after its journal (something changed it between runs): the chunks the journal kept are re-hashed, a damaged one fetched again', async () => {
    const dest = join(dir, `m${n++}.out`)
    await interrupt(dest)
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    if (loaded.status !== 'ok') throw new Error(`journal ${loaded.status}`)
    const kept = loaded.journal.bytes
    await loaded.journal.close()
    expect(kept).toBeGreaterThan(0)
    // Damage the first chunk, which the journal kept, as another program would; the journal was
    // last written a minute before.
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from('ROT'), 0, 3, 5)
    await fh.close()
    const minuteAgo = new Date(Date.now() - 60_000)
    await utimes(journalPath(dest), minuteAgo, minuteAgo)
    const { r, served: got, progress } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'part-modified' })
    // The chunks the journal kept are checked (for content-defined chunks, to bytes estimated first).
    expect(checkShown(progress).bytesChecked).toBeGreaterThanOrEqual(kept)
    expect(r.resume.bytesKept).toBeGreaterThan(0)
    expect(r.resume.bytesKept).toBeLessThan(kept)
    expect(got).toBe(SIZE - r.resume.bytesKept)
  })

  it('a part file changed at once after a clean stop (within the journal lag a crash allows): the seal tells, the chunks are re-hashed', async () => {
    const dest = join(dir, `s${n++}.out`)
    await interrupt(dest)
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    if (loaded.status !== 'ok') throw new Error(`journal ${loaded.status}`)
    // The clean stop sealed the journal with the part file's mtime and ctime.
    const { mtimeNs, ctimeNs } = await stat(`${dest}.part`, { bigint: true })
    expect(loaded.journal.sealedPart).toEqual({ mtimeNs, ctimeNs })
    await loaded.journal.close()
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from('CORRUPTED!!'), 0, 11, 100)
    await fh.close()
    const { r } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'part-modified' })
    // Untouched, the seal is trusted (and dropped at the resumed transfer's first journal flush).
    const again = join(dir, `s${n++}.out`)
    await interrupt(again)
    const ac = new AbortController()
    const stopped = receiver.fetch(ticket, again, {
      signal: ac.signal,
      onResume: (info) => {
        expect(info.mode).toBe('journal')
        ac.abort()
      },
    })
    await stopped.result.catch(() => {})
    const { r: resumed } = await fetchCounting(again)
    expect(resumed.resume.mode).toBe('journal')
  })

  it('a part file changed after a clean stop with its mtime put back (touch -r): its ctime tells, the chunks are re-hashed', async () => {
    const dest = join(dir, `s${n++}.out`)
    await interrupt(dest)
    const part = `${dest}.part`
    const { mtimeNs } = await stat(part, { bigint: true })
    const times = `${dest}.times`
    execFileSync('touch', ['-r', part, times])
    const fh = await open(part, 'r+')
    await fh.write(Buffer.from('CORRUPTED!!'), 0, 11, 100)
    await fh.close()
    execFileSync('touch', ['-r', times, part])
    expect((await stat(part, { bigint: true })).mtimeNs).toBe(mtimeNs)
    const { r } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'part-modified' })
  })

  it('a check after a crash stopped before it ends (Ctrl-C) leaves the journal unsealed: the next run checks the kept chunks, a damaged one fetched again', async () => {
    const dest = join(dir, `c${n++}.out`)
    await interrupt(dest)
    await unsealJournal(dest)
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from('ROT'), 0, 3, 5)
    await fh.close()
    // Stopped as the check is about to start: nothing checked yet.
    const ac = new AbortController()
    const stopped = receiver.fetch(ticket, dest, { signal: ac.signal, onResume: () => ac.abort() })
    expect((await stopped.result.catch((e: unknown) => e)) as { code: string }).toMatchObject({
      code: 'ABORTED',
    })
    const { r, progress } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({ mode: 'journal', reason: 'unclean-stop' })
    checkShown(progress)
  })

  it('after a crash the check notes in the journal how far it got, as it goes (every journal.flushBytes)', async () => {
    const dest = join(dir, `g${n++}.out`)
    await interrupt(dest)
    await unsealJournal(dest)
    const noting = await createEngine({ workers: 1, journal: { flushBytes: MiB } })
    try {
      let noted: JournalInit['checked']
      const ac = new AbortController()
      const h = noting.fetch(ticket, dest, {
        signal: ac.signal,
        maxBytesPerSec: MiB,
        onProgress: (p) => {
          if (p.check !== undefined || ac.signal.aborted) return
          // The check is over and the fetch begins: what it noted is on disk.
          ac.abort()
          void journalSuperblock(dest).then((sb) => (noted = sb.checked))
        },
      })
      await h.result.catch(() => {})
      await eventually(() => noted !== undefined, 'the note read')
      const { mtimeNs } = await stat(`${dest}.part`, { bigint: true })
      expect(noted!.through).toBeGreaterThan(0)
      expect(noted!.part.mtimeNs).toBeLessThanOrEqual(mtimeNs)
    } finally {
      await noting.stop()
    }
  })

  it('a check after a crash cut short goes on from its note: the next run checks only the chunks from there', async () => {
    const dest = join(dir, `g${n++}.out`)
    await interrupt(dest)
    await unsealJournal(dest)
    const { journal } = (await Journal.load(journalPath(dest), defaultJournalOptions)) as { journal: Journal }
    const [first] = journal.keptRanges(1)
    const keptBytes = journal.bytes
    await journal.close()
    const through = first!.start + 4
    await noteCheckedThrough(dest, through)
    const { r, progress } = await fetchCounting(dest)
    expect(r.resume).toMatchObject({
      mode: 'journal',
      reason: 'unclean-stop',
      bytesKept: keptBytes,
      chunksChecked: 4,
    })
    expect(progress.find((p) => p.check !== undefined)?.check?.chunksToCheck).toBe(journal.chunks - 4)
  })

  it('a note of a check cut short, then the part file written by something else: the next run checks every kept chunk again', async () => {
    const dest = join(dir, `g${n++}.out`)
    await interrupt(dest)
    await unsealJournal(dest)
    const { journal } = (await Journal.load(journalPath(dest), defaultJournalOptions)) as { journal: Journal }
    const [first] = journal.keptRanges(1)
    await journal.close()
    await noteCheckedThrough(dest, first!.start + 4)
    const fh = await open(`${dest}.part`, 'r+')
    await fh.write(Buffer.from('ROT'), 0, 3, 5)
    await fh.close()
    const { progress } = await fetchCounting(dest)
    expect(progress.find((p) => p.check !== undefined)?.check?.chunksToCheck).toBe(journal.chunks)
  })

  it('a resume stopped as soon as it opened the part file leaves it as it was: the next one still trusts the journal', async () => {
    const dest = join(dir, `o${n++}.out`)
    await interrupt(dest)
    // Both files last written a minute ago, as after a crash a while back.
    const minuteAgo = new Date(Date.now() - 60_000)
    await utimes(`${dest}.part`, minuteAgo, minuteAgo)
    await utimes(journalPath(dest), minuteAgo, minuteAgo)
    const ac = new AbortController()
    const stopped = receiver.fetch(ticket, dest, { signal: ac.signal, onResume: () => ac.abort() })
    expect((await stopped.result.catch((e: unknown) => e)) as { code: string }).toMatchObject({
      code: 'ABORTED',
    })
    const { r } = await fetchCounting(dest)
    expect(r.resume.mode).toBe('journal')
  })

  /** A destination whose part file and journal hold 2 MiB or more of another content, interrupted. */
  async function otherContentPart() {
    const dest = join(dir, `e${n++}.out`)
    const other = join(dir, `other${n}.bin`)
    await writeFile(other, 16 * MiB, 'random')
    const otherTicket = await sender.publish(other)
    await interruptedFetch({
      ticket: otherTicket,
      senderAddrs: sender.network.addresses,
      dest,
      atBytes: 2 * MiB,
    })
    return { dest, other, otherTicket }
  }

  it('a journal for other content: kept (DESTINATION_EXISTS) unless overwrite, which checks its chunks against this content (none of another random file matches)', async () => {
    const { dest } = await otherContentPart()
    const refused = await receiver.fetch(ticket, dest).result.catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(DestinationExistsError)
    expect((refused as Error).message).toMatch(/\.part holds \d+ verified chunks .* of other content/)
    expect(existsSync(`${dest}.part`)).toBe(true)
    expect(existsSync(journalPath(dest))).toBe(true)

    const before = served.bytes
    const r = await receiver.fetch(ticket, dest, { overwrite: true }).result
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'other-content', chunksKept: 0 })
    expect(served.bytes - before).toBe(SIZE)
    expect(await sha256File(dest)).toBe(srcHash)
  })

  /** `src` with 3 MiB appended, published: what a log or a growing dataset becomes. */
  async function grownFile() {
    const grown = join(dir, `grown${n++}.bin`)
    await copyFile(src, grown)
    const tail = await open(grown, 'a')
    await tail.write(new Uint8Array(3 * MiB).fill(7))
    await tail.close()
    return { grown, grownTicket: await sender.publish(grown) }
  }

  it('a file that grew since a fetch of it was interrupted: the fetch of its new ticket over what that left (overwrite) keeps the chunks that still match', async () => {
    const dest = join(dir, `e${n++}.out`)
    await interrupt(dest)
    const { grown, grownTicket } = await grownFile()
    // Fetched without overwrite, the part file of the other content is kept and the fetch refused.
    await expect(receiver.fetch(grownTicket, dest).result).rejects.toBeInstanceOf(DestinationExistsError)
    const before = served.bytes
    const r = await receiver.fetch(grownTicket, dest, { overwrite: true }).result
    expect(await sha256File(dest)).toBe(await sha256File(grown))
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'other-content' })
    // What the interrupted fetch verified lies before the appended bytes: all of it, bar a
    // content-defined chunk the end of the old file cut short, still matches.
    expect(r.resume.bytesKept).toBeGreaterThanOrEqual(SIZE / 2 - 2 * MiB)
    expect(served.bytes - before).toBe(SIZE + 3 * MiB - r.resume.bytesKept)
  })

  it('a part file of another size whose journal is gone: its chunks are checked, not discarded (part-size)', async () => {
    const dest = join(dir, `e${n++}.out`)
    await interrupt(dest)
    await unlink(journalPath(dest))
    const { grown, grownTicket } = await grownFile()
    const r = await receiver.fetch(grownTicket, dest).result
    expect(await sha256File(dest)).toBe(await sha256File(grown))
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'part-size' })
    expect(r.resume.bytesKept).toBeGreaterThanOrEqual(SIZE / 2 - 2 * MiB)
  })

  it('a file fetched with overwrite over an older version of it at the destination (grown, or changed in place): the chunks that still match are kept, not fetched (destination)', async () => {
    const dest = join(dir, `e${n++}.out`)
    await fetchCounting(dest)
    const { grown, grownTicket } = await grownFile()
    await expect(receiver.fetch(grownTicket, dest).result).rejects.toBeInstanceOf(DestinationExistsError)
    expect(existsSync(`${dest}.part`)).toBe(false)
    let before = served.bytes
    const resumed: ResumeInfo[] = []
    const r = await receiver.fetch(grownTicket, dest, {
      overwrite: true,
      onResume: (info) => resumed.push(info),
    }).result
    expect(await sha256File(dest)).toBe(await sha256File(grown))
    expect(resumed.map((i) => `${i.mode} ${i.reason}`)).toEqual(['rehash destination'])
    expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'destination' })
    // Everything before the appended bytes, bar a content-defined chunk the old end cut short.
    expect(r.resume.bytesKept).toBeGreaterThanOrEqual(SIZE - 2 * MiB)
    expect(served.bytes - before).toBe(SIZE + 3 * MiB - r.resume.bytesKept)
    expect(existsSync(`${dest}.part`)).toBe(false)

    // Changed in place: 64 KiB in the middle, the size the same.
    const edited = join(dir, `edited${n++}.bin`)
    await copyFile(grown, edited)
    const fh = await open(edited, 'r+')
    await fh.write(new Uint8Array(64 * 1024).fill(9), 0, 64 * 1024, 10 * MiB)
    await fh.close()
    before = served.bytes
    const again = await receiver.fetch(await sender.publish(edited), dest, { overwrite: true }).result
    expect(await sha256File(dest)).toBe(await sha256File(edited))
    expect(again.resume).toMatchObject({ mode: 'rehash', reason: 'destination' })
    // The chunks the edit touched, at most two of the largest size.
    expect(again.resume.bytesKept).toBeGreaterThanOrEqual(SIZE + 3 * MiB - 4 * MiB)
    expect(served.bytes - before).toBe(SIZE + 3 * MiB - again.resume.bytesKept)
  })

  it('a journal for other content is resumed by that content: what the refused fetch left is intact', async () => {
    const { dest, other, otherTicket } = await otherContentPart()
    await expect(receiver.fetch(ticket, dest).result).rejects.toBeInstanceOf(DestinationExistsError)
    const r = await receiver.fetch(otherTicket, dest).result
    expect(r.resume.mode).toBe('journal')
    expect(r.resume.chunksKept).toBeGreaterThan(0)
    expect(await sha256File(dest)).toBe(await sha256File(other))
  })

  it('with journal.enabled = false no journal is written; a later fetch re-hashes the part file', async () => {
    const noJournal = await createEngine({ workers: 1, journal: { enabled: false } })
    try {
      const dest = join(dir, `f${n++}.out`)
      await interruptedFetch({
        ticket,
        senderAddrs: sender.network.addresses,
        dest,
        atBytes: SIZE / 2,
        engine: { journal: { enabled: false } },
      })
      expect(existsSync(journalPath(dest))).toBe(false)
      expect(existsSync(`${dest}.part`)).toBe(true)
      const before = served.bytes
      const r = await noJournal.fetch(ticket, dest).result
      expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'journal-disabled' })
      expect(r.resume.bytesKept).toBeGreaterThan(0)
      expect(served.bytes - before).toBe(SIZE - r.resume.bytesKept)
      expect(await sha256File(dest)).toBe(srcHash)
    } finally {
      await noJournal.stop()
    }
  })
  it('a transfer of at most journal.minBytes keeps no journal; an interrupted one is re-hashed on resume', async () => {
    const opts = { journal: { minBytes: SIZE } }
    const small = await createEngine({ workers: 1, ...opts })
    try {
      const dest = join(dir, `g${n++}.out`)
      await interruptedFetch({
        ticket,
        senderAddrs: sender.network.addresses,
        dest,
        atBytes: SIZE / 2,
        engine: opts,
      })
      expect(existsSync(journalPath(dest))).toBe(false)
      expect(existsSync(`${dest}.part`)).toBe(true)
      const before = served.bytes
      const r = await small.fetch(ticket, dest).result
      expect(r.resume).toMatchObject({ mode: 'rehash', reason: 'small' })
      expect(r.resume.bytesKept).toBeGreaterThan(0)
      expect(served.bytes - before).toBe(SIZE - r.resume.bytesKept)
      expect(await sha256File(dest)).toBe(srcHash)
    } finally {
      await small.stop()
    }
  })
})

describe('errors retrying cannot fix', () => {
  it('CONTENT_NOT_FOUND fails at once (no retry) and leaves nothing behind', async () => {
    const { dir, cleanup } = await tempDir('haul-resume-nf-')
    const sender = await createEngine({ workers: 1 })
    const receiver = await createEngine({ workers: 1, retry: { maxAttempts: 5, baseDelayMs: 10 } })
    try {
      const t = encodeTicket({
        cid: new Uint8Array(32).fill(3),
        peerId: sender.peerId,
        addrs: sender.addresses,
      })
      let retries = 0
      const dest = join(dir, 'x')
      const err = await receiver.fetch(t, dest, { onRetry: () => retries++ }).result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ContentNotFoundError)
      expect(retries).toBe(0)
      expect(existsSync(`${dest}.part`)).toBe(false)
      expect(existsSync(journalPath(dest))).toBe(false)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
      await cleanup()
    }
  })
})
