/**
 * A peer that answers the stream's hello (and perhaps the header) and then nothing is as absent
 * as one that never answers: the fetch gives up after `retry.maxAttemptsFirstContact` request
 * timeouts, not `retry.maxAttempts`, whatever the peer said first.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { type HaulError, RetriesExhaustedError } from '../../src/errors.ts'
import { joinTickets } from '../../src/ticket/multi-ticket.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { type Behaviour, useFakeSenders } from './support/receiver-sender.ts'

const CHUNK = 64 * 1024
const chunking = { kind: 'fixed', size: CHUNK } as const

describe('a peer that says hello and then never serves', () => {
  const fakes = useFakeSenders('haul-recv-silent-', chunking)

  async function receive(
    behaviour: Behaviour,
    name: string,
  ): Promise<{ err: unknown; retries: RetryInfo[] }> {
    const s = await fakes.start(behaviour)
    const engine = await Engine.create({
      workers: 1,
      chunking,
      timeouts: { requestMs: 400 },
      retry: { maxAttempts: 10, maxAttemptsFirstContact: 3, baseDelayMs: 20, maxDelayMs: 50 },
    })
    const retries: RetryInfo[] = []
    try {
      const err = await engine
        .fetch(s.ticket, join(fakes.dir, name), { onRetry: (r) => retries.push(r) })
        .result.catch((e: unknown) => e)
      return { err, retries }
    } finally {
      await engine.stop()
    }
  }

  function expectGaveUpAfterThree(r: { err: unknown; retries: RetryInfo[] }): void {
    expect(r.err).toBeInstanceOf(RetriesExhaustedError)
    // Nothing came: the message does not send the user looking for a part file to resume.
    expect((r.err as Error).message).toContain('Nothing was verified yet')
    expect(((r.err as HaulError).cause as HaulError).code).toBe('TIMEOUT')
    expect(r.retries.map((x) => x.error.code)).toEqual(['TIMEOUT', 'TIMEOUT'])
    expect(r.retries.map((x) => x.maxAttempts)).toEqual([3, 3])
  }

  it('hello, then no answer to the header: maxAttemptsFirstContact request timeouts, as a peer silent from the start', async () => {
    expectGaveUpAfterThree(await receive(async () => {}, 'hello-only.out'))
  })

  it('hello and the header, then no answer to pages or chunks: the same', async () => {
    const headerOnly: Behaviour = async (req, call) => {
      if (req.type === 'get-header') await call.honest(req)
    }
    expectGaveUpAfterThree(await receive(headerOnly, 'header-only.out'))
  })

  it('a provider that never says hello beside an honest one: the fetch ends with the honest one, not after the silent one times out', async () => {
    const honest = await fakes.start((req, call) => call.honest(req))
    const silent = await fakes.start(async () => {}, { hello: false })
    // Timeouts far longer than the test's: a fetch that waited for the silent peer would not end in time.
    const engine = await Engine.create({
      workers: 1,
      chunking,
      timeouts: { idleMs: 600_000, requestMs: 600_000 },
    })
    try {
      const r = await engine.fetch(joinTickets([silent.ticket, honest.ticket]), join(fakes.dir, 'beside.out'))
        .result
      expect(r.bytes).toBe(4 * CHUNK)
      expect(silent.streams).toBe(1)
    } finally {
      await engine.stop()
    }
  }, 20_000)
})
