import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { AbortedError, type Engine, type ServeEvent } from '../../src/index.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { RemoteSession } from '../../src/session/remote-session.ts'
import { joinTickets } from '../../src/ticket/multi-ticket.ts'
import { AttackClient, targetOf } from '../hostile/support/serving-attack.ts'
import { useEngines } from '../support/engines.ts'
import { failure } from '../support/errors.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 6 * MiB + 123
const CHUNK = 64 * KiB

describe('Engine.onServe reports what the sender serves (real engines)', () => {
  const engines = useEngines({ workers: 1, chunking: { kind: 'fixed', size: CHUNK } })
  const engine = engines.engine
  let dir: string
  let src: string

  beforeAll(async () => {
    dir = engines.dir
    src = join(dir, 'f.src')
    await writeFile(src, SIZE, 'random')
  })

  /** What `sender` reports from now on. */
  const eventsOf = (sender: Engine): ServeEvent[] => {
    const events: ServeEvent[] = []
    sender.onServe((e) => events.push(e))
    return events
  }

  const of = <T extends ServeEvent['type']>(events: ServeEvent[], type: T) =>
    events.filter((e): e is Extract<ServeEvent, { type: T }> => e.type === type)

  it('a fetch: one session from the receiver, its content, chunk bytes adding up to the file, and its end', async () => {
    const sender = await engine()
    const receiver = await engine()
    const events: ServeEvent[] = []
    const off = sender.onServe((e) => events.push(e))
    const { ticket, index } = await sender.publish(src)
    const dest = join(dir, 'copy')
    const r = await receiver.fetch(ticket, dest).result
    expect(await sha256File(dest)).toBe(await sha256File(src))

    const served = () => of(events, 'chunks-served')
    await eventually(() => served().reduce((n, e) => n + e.bytes, 0) === SIZE, 'every chunk reported')
    const [opened, ...moreOpened] = of(events, 'session-opened')
    expect(moreOpened).toEqual([])
    expect(opened).toMatchObject({ peerId: receiver.peerId })
    expect(opened!.remoteAddr).toMatch(/^\/ip[46]\/[^/]+\/tcp\/\d+/)
    const [requested] = of(events, 'content-requested')
    expect(requested).toEqual({
      type: 'content-requested',
      session: opened!.session,
      peerId: receiver.peerId,
      cid: cidToString(index.cid),
      path: src,
      totalBytes: SIZE,
      totalChunks: index.chunks,
      partial: false,
    })
    // What the sender reports is what the fetch moved, counted once.
    expect(r.bytes).toBe(SIZE)
    expect(served().reduce((n, e) => n + e.chunks, 0)).toBe(index.chunks)
    expect(served().every((e) => e.session === opened!.session && e.cid === requested!.cid)).toBe(true)
    expect(served().at(-1)!.contentBytes).toBe(SIZE)
    expect(served().reduce((n, e) => n + e.wireBytes, 0)).toBeGreaterThan(0)
    // Aggregated: never one event per chunk.
    expect(served().length).toBeLessThan(index.chunks)
    expect(of(events, 'session-ended')).toEqual([])

    // The receiver keeps its session for a next fetch; stopping it ends the session here.
    await receiver.stop()
    await eventually(() => of(events, 'session-ended').length === 1, 'the session ends')
    const [ended] = of(events, 'session-ended')
    expect(ended).toMatchObject({
      session: opened!.session,
      peerId: receiver.peerId,
      bytes: SIZE,
      chunks: index.chunks,
      busy: false,
    })
    // The receiver resets the streams it no longer needs: for a finished fetch that is no failure.
    expect(ended).toMatchObject({ reason: 'closed' })
    expect(ended!.code).toBeUndefined()
    off()
    const before = events.length
    await (await engine()).fetch(ticket, join(dir, 'copy2')).result
    expect(events.length).toBe(before)
  })

  it('a file changed since it was published: the fetch fails CONTENT_CHANGED, and the sender reports the content withdrawn, once', async () => {
    const sender = await engine()
    const receiver = await engine()
    const events = eventsOf(sender)
    const changing = join(dir, 'changing.src')
    await writeFile(changing, SIZE, 'random', 3)
    const { ticket, index } = await sender.publish(changing)
    // Other bytes, same size, a later mtime: what an editor saving in place leaves.
    await writeFile(changing, SIZE, 'random', 4)
    const err = await failure(receiver.fetch(ticket, join(dir, 'changed.out')).result)
    expect(err.code).toBe('CONTENT_CHANGED')
    expect(of(events, 'content-withdrawn')).toEqual([
      {
        type: 'content-withdrawn',
        cid: cidToString(index.cid),
        path: changing,
        code: 'CONTENT_CHANGED',
        message: expect.stringContaining('changed since it was indexed'),
      },
    ])
    // Withdrawn: a later fetch of the ticket is told it changed (not served), and nothing more is reported.
    expect((await failure(receiver.fetch(ticket, join(dir, 'changed2.out')).result)).code).toBe(
      'CONTENT_CHANGED',
    )
    expect(of(events, 'content-withdrawn')).toHaveLength(1)
  })

  it('a stream reset just after its peer cancelled the request being answered is a busy session that failed (a receiver that resets its stream rather than closing it)', async () => {
    const sender = await engine({ limits: { uploadBytesPerSec: 1 * MiB } })
    const events = eventsOf(sender)
    const target = targetOf((await sender.publish(src)).ticket)
    const client = await AttackClient.create()
    try {
      const ask = { cid: target.cid, secret: target.secret }
      const w = await client.send(target, [
        ...encodeMessage({ type: 'get-chunks', requestId: 7, ranges: [{ start: 0, end: 64 }], ...ask }),
      ])
      await eventually(() => w.replies.some((m) => m.type === 'chunk'), 'first chunk')
      await w.stream.write(encodeMessage({ type: 'cancel', requestId: 7 }))
      // Time for the cancel to stop the reply loop before the reset arrives (busy either way:
      // a reset that overtakes it finds the request still being answered).
      await new Promise((r) => setTimeout(r, 500))
      w.stream.abort(new Error('cancelled'))
      await eventually(() => of(events, 'session-ended').length === 1, 'the session ends')
      expect(of(events, 'session-ended')[0]).toMatchObject({ reason: 'failed', busy: true })
    } finally {
      await client.stop()
    }
  })

  it('a fetch the receiver cancels withdraws what it asked: the sender sees it stop fetching, not a cut-off; a sender stopping mid-fetch ends its sessions as stopped before stop() returns', async () => {
    // Slow enough that both fetches are still running when they are cut.
    const sender = await engine({ limits: { uploadBytesPerSec: 2 * MiB } })
    const events = eventsOf(sender)
    const { ticket } = await sender.publish(src)
    const servedTo = (session: number) =>
      of(events, 'chunks-served')
        .filter((e) => e.session === session)
        .reduce((n, e) => n + e.bytes, 0)

    const cancelled = await engine()
    const h = cancelled.fetch(ticket, join(dir, 'cancelled'))
    await eventually(() => of(events, 'chunks-served').length > 0, 'first chunks served')
    h.cancel()
    await expect(h.result).rejects.toBeInstanceOf(AbortedError)
    await eventually(() => of(events, 'session-ended').length === 1, 'the cancelled session ends')
    const [stopped] = of(events, 'session-ended')
    expect(stopped).toMatchObject({ reason: 'closed', busy: false, peerId: cancelled.peerId })
    expect(stopped!.code).toBeUndefined()
    expect(stopped!.bytes).toBe(servedTo(stopped!.session))
    expect(stopped!.bytes).toBeLessThan(SIZE)

    const other = await engine({ retry: { maxAttempts: 1, maxAttemptsFirstContact: 1 } })
    const h2 = other.fetch(ticket, join(dir, 'stopped'))
    const opened = () => of(events, 'session-opened').filter((e) => e.peerId === other.peerId)
    await eventually(
      () => opened().length === 1 && servedTo(opened()[0]!.session) > 0,
      'the second fetch is served',
    )
    await sender.stop()
    const ends = of(events, 'session-ended').filter((e) => e.peerId === other.peerId)
    expect(ends).toHaveLength(1)
    expect(ends[0]).toMatchObject({ reason: 'stopped', busy: true })
    expect(ends[0]!.bytes).toBe(servedTo(ends[0]!.session))
    await h2.result.catch(() => {})
  })

  it('a receiver that closes its session with a request still being answered (a multi-peer fetch done elsewhere) withdraws it first: the sender sees the peer stop fetching, not a cut-off', async () => {
    const sender = await engine({ limits: { uploadBytesPerSec: 1 * MiB } })
    const events = eventsOf(sender)
    const target = targetOf((await sender.publish(src)).ticket)
    const client = await AttackClient.create()
    try {
      const stream = await client.open(target)
      const session = RemoteSession.start(stream, { maxFrame: 16 * MiB, requestTimeoutMs: 30_000 })
      let chunks = 0
      const asked = session.request(
        (requestId) => ({
          type: 'get-chunks',
          requestId,
          cid: target.cid,
          ranges: [{ start: 0, end: 96 }],
          secret: target.secret,
        }),
        (msg) => (msg.type === 'chunk' && ++chunks === 96 ? 'done' : 'more'),
      )
      asked.catch(() => {})
      await eventually(() => chunks > 0, 'the first chunk')
      await session.close()
      await eventually(() => of(events, 'session-ended').length === 1, 'the session ends')
      const [ended] = of(events, 'session-ended')
      expect(ended!.bytes).toBeLessThan(SIZE)
      expect(ended).toMatchObject({ reason: 'closed', busy: false })
      expect(ended!.code).toBeUndefined()
    } finally {
      await client.stop()
    }
  })

  it('a multi-peer fetch that completes, its engine stopped at once: a provider still asked for chunks sees the peer stop fetching, not a cut-off', async () => {
    const chunking = { kind: 'fixed', size: 256 * KiB } as const
    const slow = await engine({ chunking, limits: { uploadBytesPerSec: 1 * MiB } })
    const fast = await engine({ chunking })
    const events = eventsOf(slow)
    const tickets = [(await slow.publish(src)).ticket, (await fast.publish(src)).ticket]
    const receiver = await engine()
    const dest = join(dir, 'two-providers')
    await receiver.fetch(joinTickets(tickets), dest).result
    await receiver.stop()
    expect(await sha256File(dest)).toBe(await sha256File(src))
    await eventually(() => of(events, 'session-ended').length === 1, 'the slow session ends')
    const [ended] = of(events, 'session-ended')
    expect(ended!.bytes).toBeGreaterThan(0)
    expect(ended!.bytes).toBeLessThan(SIZE)
    expect(ended).toMatchObject({ reason: 'closed', busy: false })
  })
})
