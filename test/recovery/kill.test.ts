import { existsSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultJournalOptions, Journal, journalPath } from '../../src/storage/journal.ts'
import { type PeerEvent, spawnPeer } from '../support/children.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from '../support/fault-proxy.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { seededRandom } from '../support/random.ts'
import { startSender } from '../support/sender.ts'
import { servedBytes } from '../support/served.ts'

const MiB = 1024 * 1024
const SIZE = 32 * MiB + 1234
const KILLS = 22
const WINDOW = 4 * MiB
const FLUSH = 2 * MiB
/** The documented bound: a crash re-downloads at most journal.flushBytes + fetch.windowBytes. */
const BOUND_PER_KILL = FLUSH + WINDOW

const RECEIVER = {
  workers: 1,
  fetch: { windowBytes: WINDOW },
  journal: { flushBytes: FLUSH },
  retry: { maxAttempts: 5, baseDelayMs: 50, maxDelayMs: 500 },
}

describe('SIGKILL the receiving process at random points, restart it, resume', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  let proxy: FaultProxy
  const served = servedBytes()
  let ticket: string
  let src: string
  let source: Buffer

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-kill-'))
    sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap: served.wrap })
    src = join(dir, 'src.bin')
    await writeFile(src, SIZE, 'random')
    source = await readFile(src)
    // A 16 MiB/s link stretches the transfer over ~2 s of fetching, so kills land all along it.
    proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      rateBytesPerSec: 16 * MiB,
    })
    ticket = proxyTicket(await sender.publish(src), proxy)
  })
  afterAll(async () => {
    await proxy.close()
    await sender.stop()
    await cleanup()
  })

  /** After a crash: every chunk the journal vouches for must hold the source's bytes. */
  async function checkAgreement(dest: string): Promise<number> {
    if (!existsSync(journalPath(dest))) return 0
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    // A kill during the journal's creation leaves only its temporary file, never a torn journal.
    expect(loaded.status).toBe('ok')
    if (loaded.status !== 'ok') return 0
    try {
      const part = await readFile(`${dest}.part`)
      let n = 0
      for (let i = 0; i < loaded.journal.leafCount; i++) {
        if (!loaded.journal.has(i)) continue
        n++
        const a = part.subarray(i * MiB, Math.min(SIZE, (i + 1) * MiB))
        expect(a.equals(source.subarray(i * MiB, Math.min(SIZE, (i + 1) * MiB))), `chunk ${i}`).toBe(true)
      }
      return n
    } finally {
      await loaded.journal.close()
    }
  }

  it(`${KILLS} kills: the file arrives verified and re-downloads stay within flushBytes + windowBytes per kill`, async () => {
    const seed = Number(process.env.HAUL_SEED ?? Date.now() % 1e9)
    const random = seededRandom(seed)
    const dest = join(dir, 'out.bin')
    const kills: Array<{ kind: string; bytesDone: number; journaled: number }> = []
    let finished: PeerEvent | undefined

    for (let run = 0; finished === undefined; run++) {
      const child = spawnPeer({ mode: 'get', ticket, dest, engine: RECEIVER })
      let bytesDone = 0
      child.onEvent((e) => {
        if (e.event === 'progress') bytesDone = e.bytesDone as number
      })
      if (kills.length < KILLS) {
        // Three kinds of points: during start-up; just after the first report (journal open,
        // first requests); and at a byte offset spread over the file (mid-chunk, mid-flush).
        const kind = run % 5 === 0 ? 'startup' : run % 5 === 1 ? 'early' : 'offset'
        const target = ((kills.length + 1) / (KILLS + 2)) * SIZE
        const trigger =
          kind === 'startup'
            ? sleep(random() * 1500)
            : kind === 'early'
              ? child.waitFor((e) => e.event === 'progress', 'progress').then(() => sleep(random() * 300))
              : child
                  .waitFor((e) => e.event === 'progress' && (e.bytesDone as number) >= target, 'offset')
                  .then(() => sleep(random() * 80))
        const outcome = await Promise.race([
          trigger.then(() => 'kill' as const),
          child
            .waitFor((e) => e.event === 'done' || e.event === 'error', 'result')
            .then(() => 'ended' as const),
        ]).catch(() => 'ended' as const)
        if (outcome === 'kill' && child.proc.exitCode === null) {
          child.proc.kill('SIGKILL')
          await child.exited
          kills.push({ kind, bytesDone, journaled: await checkAgreement(dest) })
          continue
        }
      }
      const end = await child.waitFor((e) => e.event === 'done' || e.event === 'error', 'result')
      expect(end, `seed ${seed}: ${child.stderr()}`).toMatchObject({ event: 'done' })
      finished = end
    }

    expect(kills.length, `seed ${seed}`).toBeGreaterThanOrEqual(20)
    expect(kills.filter((k) => k.bytesDone > 0).length).toBeGreaterThanOrEqual(12) // mid-transfer, not just start-up
    // Kills reached the second half of the file, not only its start.
    expect(Math.max(...kills.map((k) => k.bytesDone))).toBeGreaterThan(SIZE / 2)
    expect(await sha256File(dest)).toBe(await sha256File(src))
    expect(existsSync(`${dest}.part`) || existsSync(journalPath(dest))).toBe(false)
    expect((finished.resume as { mode: string }).mode).toBe('journal')
    const redownloaded = served.bytes - SIZE
    expect(redownloaded).toBeGreaterThanOrEqual(0)
    expect(redownloaded, `seed ${seed}, kills ${JSON.stringify(kills)}`).toBeLessThanOrEqual(
      kills.length * BOUND_PER_KILL,
    )
    console.info(
      `kill test (seed ${seed}): ${kills.length} kills, re-downloaded ${(redownloaded / MiB).toFixed(1)} MiB ` +
        `(${(redownloaded / kills.length / MiB || 0).toFixed(2)} MiB per kill, bound ${BOUND_PER_KILL / MiB} MiB)`,
    )
  }, 240_000)

  it('a part file damaged at once after a crash is not trusted: the kept chunks are re-hashed, the damaged one fetched again', async () => {
    const dest = join(dir, 'damaged.bin')
    const child = spawnPeer({ mode: 'get', ticket, dest, engine: RECEIVER })
    await child.waitFor((e) => e.event === 'progress' && (e.bytesDone as number) >= SIZE / 2, 'half the file')
    child.proc.kill('SIGKILL')
    await child.exited
    // Within the journal's flush interval of the crash, as a program (or a disk) could.
    const loaded = await Journal.load(journalPath(dest), defaultJournalOptions)
    if (loaded.status !== 'ok') throw new Error(`journal ${loaded.status}`)
    const damaged = [...Array(loaded.journal.leafCount).keys()]
      .filter((i) => loaded.journal.has(i))
      .slice(0, 2)
    const kept = loaded.journal.chunks
    await loaded.journal.close()
    expect(damaged).toHaveLength(2)
    const fh = await open(`${dest}.part`, 'r+')
    for (const i of damaged) await fh.write(Buffer.from('DAMAGED'), 0, 7, i * MiB + 1000)
    await fh.close()

    const before = served.bytes
    const again = spawnPeer({ mode: 'get', ticket, dest, engine: RECEIVER })
    const end = await again.waitFor((e) => e.event === 'done' || e.event === 'error', 'result')
    expect(end, again.stderr()).toMatchObject({
      event: 'done',
      resume: { mode: 'journal', reason: 'unclean-stop' },
    })
    expect(await sha256File(dest)).toBe(await sha256File(src))
    // The two damaged chunks were taken back and fetched again; the rest of what was kept was not.
    expect((end.resume as { chunksKept: number }).chunksKept).toBe(kept - 2)
    expect(served.bytes - before).toBe(SIZE - (end.resume as { bytesKept: number }).bytesKept)
  }, 120_000)
})

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
