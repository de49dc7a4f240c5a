/**
 * One peer floods a sender with requests: round after round of many streams at once, each
 * carrying more requests than a stream may queue, mixing requests that present the ticket's
 * secret, requests without one and requests with a wrong one. The per-peer bounds hold
 * (network.maxInboundStreamsPerPeer, server.maxQueuedRequests: the rest is refused with
 * TOO_MANY_REQUESTS), nothing is served without the secret, and an honest receiver's transfer
 * meanwhile completes byte-identical. A burst far past what a stream may queue cuts that stream
 * off at once, not at its idle timeout.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine, engineInternals } from '../../src/engine/engine.ts'
import { WIRE_CODES } from '../../src/errors.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import type { TransferMessage } from '../../src/protocol/messages.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'
import { AttackClient, type Target, targetOf, type Watched } from './support/serving-attack.ts'

const KiB = 1024
const CHUNKS = 64
const chunking = { kind: 'fixed', size: 64 * KiB } as const
const STREAMS_PER_PEER = 8
const QUEUED_PER_STREAM = 8
/** Streams the flooder opens at once, each round. */
const STREAMS = 24
/** Requests on each of them, in one write: more than may queue, fewer than cut a stream off. */
const REQUESTS = QUEUED_PER_STREAM + 4
/** A burst: the refusals alone are more replies than a stream's writer holds (maxQueuedRequests + 8). */
const BURST = 64
/** Far longer than any test here runs: a stream that ends did not end by idling. */
const IDLE_MS = 120_000

type Kind = 'with the secret' | 'without a secret' | 'with a wrong secret'
const kindOf = (requestId: number): Kind =>
  (['with the secret', 'without a secret', 'with a wrong secret'] as const)[requestId % 3]!

/** Request `requestId` of a flood stream: a chunk with the secret, a header without, a chunk with a wrong one. */
function request(t: Target, requestId: number): TransferMessage {
  const wrong = Uint8Array.from(t.secret!)
  wrong[15]! ^= 0xff
  const ranges = [{ start: requestId % CHUNKS, end: (requestId % CHUNKS) + 1 }]
  switch (kindOf(requestId)) {
    case 'with the secret':
      return { type: 'get-chunks', requestId, cid: t.cid, ranges, secret: t.secret }
    case 'without a secret':
      return { type: 'get-header', requestId, cid: t.cid }
    case 'with a wrong secret':
      return { type: 'get-chunks', requestId, cid: t.cid, ranges, secret: wrong }
  }
}

/** The final answer to each request of a stream: `end`, or its `error`. */
function finals(w: Watched): Map<number, TransferMessage> {
  const out = new Map<number, TransferMessage>()
  for (const m of w.replies) {
    if ((m.type === 'end' || m.type === 'error' || m.type === 'header') && m.requestId !== 0)
      out.set(m.requestId, m)
  }
  return out
}

/** Admitted: the server said hello on it (a stream over the per-peer bound never gets that far). */
const admitted = (w: Watched): boolean => w.replies.some((m) => m.type === 'hello')

/**
 * Turned away whole: a stream over the per-peer bound gets the connection-level
 * TOO_MANY_REQUESTS and is closed, or, past a few such refusals at once, is reset unseen.
 */
const turnedAway = (w: Watched): boolean =>
  !admitted(w) &&
  w.endedAt !== undefined &&
  w.replies.every((m) => m.type === 'error' && m.requestId === 0 && m.code === WIRE_CODES.TOO_MANY_REQUESTS)

describe('a request flood from one peer', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let flooder: AttackClient
  let src: string
  let ticket: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-flood-'))
    sender = await Engine.create({
      workers: 1,
      chunking,
      network: { maxInboundStreamsPerPeer: STREAMS_PER_PEER },
      server: { maxQueuedRequests: QUEUED_PER_STREAM },
      timeouts: { idleMs: IDLE_MS },
    })
    src = join(dir, 'f.src')
    await writeFile(src, CHUNKS * 64 * KiB - 11, 'random')
    ticket = (await sender.publish(src)).ticket
    flooder = await AttackClient.create({ maxStreamsPerPeer: 64 })
  })
  afterAll(async () => {
    await flooder.stop()
    await sender.stop()
    await cleanup()
  })

  it('is bounded per peer and served only with the secret; an honest receiver completes meanwhile', async () => {
    const target = targetOf(ticket)
    expect(target.secret).toBeDefined()
    const frames = Array.from({ length: REQUESTS }, (_, i) => encodeMessage(request(target, i + 1))).flat()
    const flooderId = flooder.net.peerId
    let peakStreams = 0
    const sampler = setInterval(() => {
      peakStreams = Math.max(peakStreams, engineInternals(sender).network.openStreamCount(flooderId))
    }, 5)
    const rounds: Watched[][] = []
    let flooding = true
    const flood = (async () => {
      while (flooding) {
        const round = await Promise.all(Array.from({ length: STREAMS }, () => flooder.send(target, frames)))
        rounds.push(round)
        // Each stream is either turned away, or has a final answer to every request it sent.
        await eventually(
          () => round.every((w) => (admitted(w) ? finals(w).size === REQUESTS : w.endedAt !== undefined)),
          'every flood stream answered',
          30_000,
        )
        for (const w of round) w.stream.abort(new Error('next round'))
      }
    })()
    const receiver = await Engine.create({ workers: 1 })
    try {
      await eventually(() => rounds.length > 0, 'the flood under way', 30_000)
      const dest = join(dir, 'honest.out')
      const result = await receiver.fetch(ticket, dest).result
      expect(await sha256File(dest)).toBe(await sha256File(src))
      expect(result.bytes).toBe(CHUNKS * 64 * KiB - 11)
    } finally {
      flooding = false
      await flood
      clearInterval(sampler)
      await receiver.stop()
    }

    expect(peakStreams).toBeLessThanOrEqual(STREAMS_PER_PEER)
    let served = 0
    for (const round of rounds) {
      const inside = round.filter(admitted)
      // Every stream stays open until the round ends, so the ones past the bound are turned away.
      expect(inside.length).toBeLessThanOrEqual(STREAMS_PER_PEER)
      expect(round.filter(turnedAway).length).toBe(round.length - inside.length)
      expect(round.length - inside.length).toBeGreaterThanOrEqual(STREAMS - STREAMS_PER_PEER)
      for (const w of inside) {
        const answers = [...finals(w).entries()]
        const tooMany = answers.filter(
          ([, m]) => m.type === 'error' && m.code === WIRE_CODES.TOO_MANY_REQUESTS,
        )
        // 32 requests in one write, 8 may queue: most are refused, none is left unanswered.
        expect(tooMany.length).toBeGreaterThanOrEqual(REQUESTS - 2 * QUEUED_PER_STREAM)
        for (const [id, m] of answers) {
          if (m.type === 'error' && m.code === WIRE_CODES.TOO_MANY_REQUESTS) continue
          if (kindOf(id) === 'with the secret') {
            expect(m.type, `request ${id}`).toBe('end')
            served++
          } else
            expect(m, `request ${id}, ${kindOf(id)}`).toMatchObject({ code: WIRE_CODES.CONTENT_NOT_FOUND })
        }
        // Without the secret nothing of the content went out: no header, page, have or chunk for those.
        const leaked = w.replies.filter(
          (m) => m.type !== 'error' && m.type !== 'hello' && kindOf(m.requestId) !== 'with the secret',
        )
        expect(leaked).toEqual([])
      }
    }
    // The flooder holds the ticket: what it asks for with the secret is served, within the bounds.
    expect(served).toBeGreaterThan(0)
  }, 120_000)

  it('a burst of requests far past the queue cuts its stream off at once; nothing goes out without the secret', async () => {
    const target = targetOf(ticket)
    const burst = Array.from({ length: BURST }, (_, i) => encodeMessage(request(target, i + 1))).flat()
    const started = performance.now()
    const w = await flooder.send(target, burst)
    await eventually(() => w.endedAt !== undefined, 'the stream cut off', IDLE_MS / 4)
    expect(w.endedAt! - started).toBeLessThan(IDLE_MS / 4)
    const leaked = w.replies.filter(
      (m) => m.type !== 'error' && m.type !== 'hello' && kindOf(m.requestId) !== 'with the secret',
    )
    expect(leaked).toEqual([])
    const refused = w.replies.filter((m) => m.type === 'error' && m.code === WIRE_CODES.TOO_MANY_REQUESTS)
    expect(refused.length).toBeGreaterThan(0)
    // Its slot is free again: the flooder's next stream is served.
    await eventually(
      () => engineInternals(sender).network.openStreamCount(flooder.net.peerId) === 0,
      'slot freed',
    )
    const next = await flooder.send(target, [...encodeMessage(request(target, 3))])
    await eventually(() => finals(next).size === 1, 'the next stream answered')
    expect(finals(next).get(3)?.type).toBe('end')
  }, 60_000)
})
