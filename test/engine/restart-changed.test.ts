/**
 * A sender started again (same data folder: same identity, port and secrets) on a file that
 * changed while it was stopped: the old ticket is told CONTENT_CHANGED at once, as it is when the
 * file changes under a running sender (content-changed.test.ts), not CONTENT_NOT_FOUND, which a
 * receiver that saw the content takes for a restart and retries for minutes.
 */
import { copyFile, mkdir, open, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentChangedError, ContentNotFoundError } from '../../src/errors.ts'
import { Engine, type EngineOptions, type PublishOptions } from '../../src/index.ts'
import { decodeSwarmTicket, encodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { failure } from '../support/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const KiB = 1024
const GiB = 1024 * 1024 * KiB
const chunking = { kind: 'fixed', size: 64 * KiB } as const

describe('a sender restarted on a file that changed while it was stopped', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let receiver: Engine
  const running: Engine[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-restart-changed-'))
    receiver = await Engine.create({ workers: 1 })
  })
  afterAll(async () => {
    await Promise.all([receiver.stop(), ...running.map((e) => e.stop())])
    await cleanup()
  })

  /** A sender on `dataDir`; `stop` it before the next one starts on the same folder. */
  async function sender(dataDir: string, opts: EngineOptions = {}): Promise<Engine> {
    const e = await Engine.create({ workers: 1, dataDir, chunking, ...opts })
    running.push(e)
    return e
  }
  async function stop(e: Engine): Promise<void> {
    running.splice(running.indexOf(e), 1)
    await e.stop()
  }
  /**
   * `<name>.bin`, random, published by a sender on its own data folder, replaced while that sender
   * is stopped, and published again by a sender started on the same folder (left running).
   */
  async function replacedWhileStopped(name: string, size: number, opts: PublishOptions = {}) {
    const data = join(dir, `data-${name}`)
    const src = join(dir, `${name}.bin`)
    await writeFile(src, size, 'random')
    const first = await sender(data)
    const old = await first.publish(src, opts)
    await stop(first)
    await writeFile(src, size, 'random')
    const again = await sender(data)
    const now = await again.publish(src, opts)
    return { src, old, now, again }
  }

  it('the old ticket fails with CONTENT_CHANGED; the new one fetches the new bytes', async () => {
    const { src, old, now, again } = await replacedWhileStopped('replaced', 300 * KiB)
    expect(now.ticket).not.toBe(old.ticket)
    const err = await failure(receiver.fetch(old.ticket, join(dir, 'replaced-old.out')).result)
    expect(err).toBeInstanceOf(ContentChangedError)
    expect(err).toMatchObject({ code: 'CONTENT_CHANGED' })
    await receiver.fetch(now.ticket, join(dir, 'replaced-new.out')).result
    expect(await sha256File(join(dir, 'replaced-new.out'))).toBe(await sha256File(src))
    await stop(again)
  })

  it('replaced twice, each time while stopped: both earlier tickets are told CONTENT_CHANGED', async () => {
    const data = join(dir, 'data-twice')
    const src = join(dir, 'twice.bin')
    await writeFile(src, 200 * KiB, 'random')
    const tickets: string[] = []
    for (let round = 0; round < 3; round++) {
      if (round > 0) await writeFile(src, 200 * KiB, 'random')
      const e = await sender(data)
      tickets.push((await e.publish(src)).ticket)
      if (round < 2) await stop(e)
    }
    for (const [i, t] of tickets.slice(0, 2).entries()) {
      const err = await failure(receiver.fetch(t, join(dir, `twice-${i}.out`)).result)
      expect(err, `ticket ${i}`).toMatchObject({ code: 'CONTENT_CHANGED' })
    }
    await receiver.fetch(tickets[2]!, join(dir, 'twice-now.out')).result
    expect(await sha256File(join(dir, 'twice-now.out'))).toBe(await sha256File(src))
    await stop(running.at(-1)!)
  })

  it('without the old secret, a request for the old content is told nothing: CONTENT_NOT_FOUND', async () => {
    const { old, again } = await replacedWhileStopped('stripped', 200 * KiB)
    const t = decodeSwarmTicket(old.ticket)
    const stripped = encodeSwarmTicket({
      ...t,
      providers: t.providers.map(({ peerId, addrs }) => ({ peerId, addrs })),
    })
    const err = await failure(receiver.fetch(stripped, join(dir, 'stripped.out')).result)
    expect(err).toBeInstanceOf(ContentNotFoundError)
    await stop(again)
  })

  it('a public publish replaced: its ticket, which has no secret, is told CONTENT_CHANGED', async () => {
    const { old, again } = await replacedWhileStopped('public', 200 * KiB, { public: true })
    const err = await failure(receiver.fetch(old.ticket, join(dir, 'public.out')).result)
    expect(err).toBeInstanceOf(ContentChangedError)
    await stop(again)
  })

  it('unchanged: the same ticket, served; changed and changed back: the first ticket fetches again, the middle one is told CONTENT_CHANGED', async () => {
    const data = join(dir, 'data-back')
    const src = join(dir, 'back.bin')
    await writeFile(src, 200 * KiB, 'random')
    const kept = join(dir, 'back.kept')
    await copyFile(src, kept)
    const digest = await sha256File(src)
    let e = await sender(data)
    const first = await e.publish(src)
    await stop(e)

    e = await sender(data)
    expect((await e.publish(src)).ticket).toBe(first.ticket)
    await receiver.fetch(first.ticket, join(dir, 'back-1.out')).result
    expect(await sha256File(join(dir, 'back-1.out'))).toBe(digest)
    await stop(e)

    await writeFile(src, 200 * KiB, 'random')
    e = await sender(data)
    const middle = await e.publish(src)
    await stop(e)

    await copyFile(kept, src)
    e = await sender(data)
    expect((await e.publish(src)).ticket).toBe(first.ticket)
    await receiver.fetch(first.ticket, join(dir, 'back-2.out')).result
    expect(await sha256File(join(dir, 'back-2.out'))).toBe(digest)
    const err = await failure(receiver.fetch(middle.ticket, join(dir, 'back-middle.out')).result)
    expect(err).toBeInstanceOf(ContentChangedError)
    await stop(e)
  })

  it('a new fetch while the restarted sender indexes the file again (touched) is told CONTENT_PREPARING and retried, then served', async () => {
    const data = join(dir, 'data-preparing')
    const src = join(dir, 'preparing.bin')
    // Sparse: made at once, and a second or more to index again with one worker.
    const fh = await open(src, 'w')
    await fh.truncate(GiB)
    await fh.close()
    const first = await sender(data)
    const old = await first.publish(src)
    await stop(first)
    const later = new Date(Date.now() + 5_000)
    await utimes(src, later, later)

    const again = await sender(data)
    const publishing = again.publish(src)
    const codes: string[] = []
    const ac = new AbortController()
    const fetching = receiver.fetch(old.ticket, join(dir, 'preparing.out'), {
      signal: ac.signal,
      onRetry: (r) => codes.push(r.error.code),
      onProgress: (p) => {
        if (p.bytesDone > 0) ac.abort()
      },
    })
    const err = await failure(fetching.result)
    expect((await publishing).ticket).toBe(old.ticket)
    // Asked while the index ran: told to ask again, then served its first chunk.
    expect(codes).toContain('CONTENT_PREPARING')
    expect(codes).not.toContain('CONTENT_NOT_FOUND')
    expect(err).toMatchObject({ code: 'ABORTED' })
    await stop(again)
  })

  it('a folder whose file changed: its old ticket fails with CONTENT_CHANGED', async () => {
    const data = join(dir, 'data-folder')
    const folder = join(dir, 'folder')
    await mkdir(folder)
    await writeFile(join(folder, 'a.bin'), 100 * KiB, 'random')
    await writeFile(join(folder, 'b.txt'), 10 * KiB, 'text', 10)
    const first = await sender(data)
    const old = await first.publishCollection(folder)
    await stop(first)
    await writeFile(join(folder, 'a.bin'), 100 * KiB, 'random')

    const again = await sender(data)
    await again.publishCollection(folder)
    const err = await failure(receiver.fetchCollection(old.ticket, join(dir, 'folder-old')))
    expect(err).toBeInstanceOf(ContentChangedError)
    await stop(again)
  })
})
