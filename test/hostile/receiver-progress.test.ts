import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { type HaulError, RetriesExhaustedError } from '../../src/errors.ts'
import { Network } from '../../src/net/network.ts'
import { PROTOCOL_ID, type TransferMessage } from '../../src/protocol/messages.ts'
import { RemoteSession } from '../../src/session/remote-session.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { sha256File } from '../support/files.ts'
import {
  type Behaviour,
  chunkFrame,
  type FakeSender,
  repeatChunk,
  repeatHeader,
  repeatPage,
  useFakeSenders,
} from './support/receiver-sender.ts'

const KiB = 1024
const CHUNK = 64 * KiB
const chunking = { kind: 'fixed', size: CHUNK } as const
/** Short enough for a quick test, far above a loopback round trip. */
const REQUEST_MS = 1_000

/**
 * A sender that repeats itself never makes progress: every repeated frame is dropped without
 * restarting the request's timer, so the request times out as if the peer were silent.
 */
describe('receiver progress rules: repeats do not keep a request alive', () => {
  const fakes = useFakeSenders('haul-recv-progress-', chunking)
  const fake = (behaviour: Behaviour): Promise<FakeSender> => fakes.start(behaviour)

  describe('one session', () => {
    let client: Network
    beforeAll(async () => {
      client = await Network.create({})
    })
    afterAll(() => client.stop())

    async function session(s: FakeSender): Promise<RemoteSession> {
      const stream = await client.openStream(s.network.peerId, s.network.addresses, PROTOCOL_ID)
      return RemoteSession.start(stream, {
        maxFrame: 8 << 20,
        requestTimeoutMs: REQUEST_MS,
        closeTimeoutMs: 500,
      })
    }

    it('a chunk re-sent every 100 ms: seen once, counted once, and the request times out; close() is bounded', async () => {
      const s = await fake(repeatChunk(100))
      const sess = await session(s)
      const seen: number[] = []
      const t0 = performance.now()
      const err = (await sess
        .request(
          (requestId) => ({
            type: 'get-chunks',
            requestId,
            cid: s.content.cid,
            ranges: [{ start: 0, end: 2 }],
          }),
          (msg) => {
            if (msg.type === 'chunk') seen.push(msg.index)
            return msg.type === 'end' ? 'done' : 'more'
          },
        )
        .catch((e: unknown) => e)) as HaulError
      const took = performance.now() - t0
      expect(err.code).toBe('TIMEOUT')
      expect(err.message).toMatch(/repeated frames/)
      expect(took).toBeLessThan(5 * REQUEST_MS)
      expect(seen).toEqual([0])
      // Only the chunk that was new counts as data the peer delivered (FetchJob.progressMark).
      expect(sess.chunkBytes).toBe(CHUNK)
      expect(sess.repeatedFrames).toBeGreaterThanOrEqual(3)
      // The peer keeps sending and never closes: the close gives up and resets the stream.
      const c0 = performance.now()
      await sess.close()
      expect(performance.now() - c0).toBeLessThan(3_000)
      expect(sess.stream.closed).toBe(true)
    })

    it('a have-complete re-sent every 100 ms: seen once, and the get-have times out', async () => {
      const s = await fake(async (req, call) => {
        const have: TransferMessage = {
          type: 'have',
          requestId: req.requestId,
          complete: true,
          start: 0,
          count: 0,
          bits: new Uint8Array(),
        }
        await call.send(have)
        await call.repeat(have, 100)
      })
      const sess = await session(s)
      let haves = 0
      const err = (await sess
        .request(
          (requestId) => ({ type: 'get-have', requestId, cid: s.content.cid, start: 0, count: 4 }),
          (msg) => {
            if (msg.type === 'have') haves++
            return msg.type === 'end' ? 'done' : 'more'
          },
        )
        .catch((e: unknown) => e)) as HaulError
      expect(err.code).toBe('TIMEOUT')
      expect(haves).toBe(1)
      expect(sess.repeatedFrames).toBeGreaterThanOrEqual(3)
      sess.abort(err)
    })

    it('a reply to a request never sent is a protocol violation', async () => {
      const s = await fake(async (req, call) => {
        await call.send({ type: 'header', requestId: req.requestId + 7, header: call.content.headerBytes })
      })
      const sess = await session(s)
      const err = (await sess
        .request(
          (requestId) => ({ type: 'get-header', requestId, cid: s.content.cid }),
          () => 'done',
        )
        .catch((e: unknown) => e)) as HaulError
      expect(err.code).toBe('PROTOCOL_VIOLATION')
      expect(sess.closed).toBe(true)
    })
  })

  describe('whole fetches', () => {
    /** A receiver with short timeouts and two attempts in a row without progress. */
    async function receive(
      s: FakeSender,
      name: string,
      opts: { swarm?: boolean } = {},
    ): Promise<{ err: unknown; retries: RetryInfo[]; ms: number; result?: unknown }> {
      const engine = await Engine.create({
        workers: 1,
        chunking,
        timeouts: { requestMs: REQUEST_MS },
        retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 },
        swarm: { peerRetries: 1 },
      })
      const retries: RetryInfo[] = []
      const t0 = performance.now()
      try {
        const result = await engine
          .fetch(s.ticket, join(fakes.dir, name), { onRetry: (r) => retries.push(r), ...opts })
          .result.catch((err: unknown) => ({ err }))
        const ms = performance.now() - t0
        return 'err' in result ? { err: result.err, retries, ms } : { err: undefined, retries, ms, result }
      } finally {
        await engine.stop()
      }
    }

    function expectTimedOut(r: { err: unknown; retries: RetryInfo[]; ms: number }): void {
      expect(r.err).toBeInstanceOf(RetriesExhaustedError)
      expect(((r.err as HaulError).cause as HaulError).code).toBe('TIMEOUT')
      expect(r.retries.length).toBeGreaterThanOrEqual(1)
      for (const x of r.retries) expect(x.error.code).toBe('TIMEOUT')
      // Two attempts of about REQUEST_MS each, plus backoff: never the hang it used to be.
      expect(r.ms).toBeLessThan(10 * REQUEST_MS)
    }

    it('(a) get-pages answered with the same page every 0.5 s: the request times out (TIMEOUT, retried); the page it did get is kept, so the next attempt completes the file', async () => {
      const r = await receive(await fake(repeatPage(500)), 'a.out')
      expect(r.err).toBeUndefined()
      expect(r.retries.length).toBeGreaterThanOrEqual(1)
      for (const x of r.retries) expect(x.error.code).toBe('TIMEOUT')
      expect(await sha256File(join(fakes.dir, 'a.out'))).toBe(await sha256File(fakes.src))
      expect(r.ms).toBeLessThan(10 * REQUEST_MS)
    })

    it('(c) seeding while it fetches: the same rule, TIMEOUT then RETRIES_EXHAUSTED', async () => {
      expectTimedOut(await receive(await fake(repeatHeader(500)), 'c-swarm.out', { swarm: true }))
    })

    it('(c) the header, then only that header frame again every 0.5 s: TIMEOUT, then RETRIES_EXHAUSTED', async () => {
      expectTimedOut(await receive(await fake(repeatHeader(500)), 'c.out'))
    })

    it('(b) each get-chunks answered with one chunk, then that chunk every 0.5 s: every request times out, and the chunks that did arrive complete the file', async () => {
      const s = await fake(repeatChunk(500))
      const r = await receive(s, 'b.out')
      // Each attempt verifies the first chunk of each of its requests (progress, so the count of
      // attempts in a row starts again) and then times out on the repeats.
      expect(r.err).toBeUndefined()
      expect(r.retries.length).toBeGreaterThanOrEqual(1)
      for (const x of r.retries) expect(x.error.code).toBe('TIMEOUT')
      expect(await sha256File(join(fakes.dir, 'b.out'))).toBe(await sha256File(fakes.src))
      expect(r.ms).toBeLessThan(4 * 4 * REQUEST_MS)
    })
  })
})

/**
 * A slow link answers a session's requests one after another: a request waits behind those
 * before it for longer than the request timeout while their replies arrive. Those bytes are the
 * peer serving, even when the timer fires between two whole frames.
 */
describe('receiver progress rules: a request waiting behind others on a slow stream', () => {
  const fakes = useFakeSenders('haul-recv-behind-', chunking)

  it("requests answered in turn, a chunk every 400 ms, the later requests' first frames coming after REQUEST_MS: no timeout, no retry", async () => {
    // One chunk at a time, in the order asked, whole frames: between two of them nothing is half-way.
    let turn: Promise<void> = Promise.resolve()
    const inTurn: Behaviour = (req, call) => {
      const mine = turn.then(async () => {
        if (req.type !== 'get-chunks') return call.honest(req)
        for (const r of req.ranges) {
          for (let i = r.start; i < r.end; i++) {
            await new Promise((resolve) => setTimeout(resolve, 400))
            await call.send(await chunkFrame(call.content, req.requestId, i))
          }
        }
        await call.send({ type: 'end', requestId: req.requestId })
      })
      turn = mine.catch(() => {})
      return mine
    }
    const s = await fakes.start(inTurn)
    const engine = await Engine.create({
      workers: 1,
      chunking,
      // A chunk a request, all four asked at once: the third's first frame comes ~1.2 s after it is sent.
      fetch: { chunksPerRequest: 1 },
      timeouts: { requestMs: REQUEST_MS },
    })
    const retries: RetryInfo[] = []
    try {
      const dest = join(fakes.dir, 'behind.out')
      const r = await engine.fetch(s.ticket, dest, { onRetry: (x) => retries.push(x) }).result
      expect(retries.map((x) => x.error.message)).toEqual([])
      expect(r.bytes).toBe(4 * CHUNK)
      expect(await sha256File(dest)).toBe(await sha256File(fakes.src))
    } finally {
      await engine.stop()
    }
  }, 30_000)
})
