import { describe, expect, it } from 'vitest'
import { createActor, toPromise } from 'xstate'
import {
  ChunkVerificationError,
  ContentNotFoundError,
  type HaulError,
  InternalError,
  NoSpaceError,
  PeerUnreachableError,
  RetriesExhaustedError,
  StreamClosedError,
  TimeoutError,
} from '../../src/errors.ts'
import type { RetryInfo, RetryOptions } from '../../src/transfer/retry.ts'
import { backoffDelay, isTransient } from '../../src/transfer/retry.ts'
import { type TransferJob, transferMachine } from '../../src/transfer/transfer-machine.ts'

type Step = 'resolve' | 'fetchChunks' | 'finalize'

const FAST: RetryOptions = {
  maxAttempts: 4,
  maxAttemptsFirstContact: 4,
  baseDelayMs: 1,
  maxDelayMs: 4,
  maxStallMs: 1,
}

/**
 * A stand-in job: records the steps it ran; `script` gives, per call of a step,
 * an error to throw (or 'hang'); `progressAt` lists the fetchChunks calls that
 * make progress before failing.
 */
function job(
  opts: {
    failAt?: Step
    error?: unknown
    hangAt?: Step
    script?: Partial<Record<Step, Array<unknown>>>
    progressOn?: (call: number) => boolean
    retry?: RetryOptions
  } = {},
) {
  const ran: Step[] = []
  const aborted: Step[] = []
  const retries: RetryInfo[] = []
  const calls: Record<Step, number> = { resolve: 0, fetchChunks: 0, finalize: 0 }
  let mark = 0
  const step = (name: Step) => async (signal: AbortSignal) => {
    ran.push(name)
    const call = calls[name]++
    if (name === 'fetchChunks' && opts.progressOn?.(call)) mark++
    const scripted = opts.script?.[name]?.[call]
    if (scripted !== undefined) throw scripted
    if (opts.failAt === name) throw opts.error
    if (opts.hangAt === name) {
      await new Promise<void>((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted.push(name)
          reject(signal.reason)
        }),
      )
    }
  }
  const j: TransferJob = {
    resolve: step('resolve'),
    fetchChunks: step('fetchChunks'),
    finalize: step('finalize'),
    retry: opts.retry ?? FAST,
    progressMark: () => mark,
    onRetry: (info) => retries.push(info),
  }
  return { job: j, ran, aborted, retries }
}

describe('transfer machine', () => {
  it('runs resolving → fetching → finalizing → done', async () => {
    const { job: j, ran } = job()
    const actor = createActor(transferMachine, { input: j })
    const states: string[] = []
    actor.subscribe((s) => states.push(String(s.value)))
    actor.start()
    const out = await toPromise(actor)
    expect(out).toEqual({ status: 'done' })
    expect(ran).toEqual(['resolve', 'fetchChunks', 'finalize'])
    expect(states).toEqual(['resolving', 'fetching', 'finalizing', 'done'])
  })

  it.each<[Step, string[]]>([
    ['resolve', ['resolve']],
    ['fetchChunks', ['resolve', 'fetchChunks']],
    ['finalize', ['resolve', 'fetchChunks', 'finalize']],
  ])('a typed error in %s that retrying cannot fix fails the transfer at once', async (at, expected) => {
    const err = new ChunkVerificationError('chunk 3 failed verification 3 times')
    const { job: j, ran, retries } = job({ failAt: at, error: err })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.status).toBe('failed')
    expect(out.error).toBe(err)
    expect(ran).toEqual(expected)
    expect(retries).toEqual([])
  })

  it.each<[string, HaulError]>([
    ['CONTENT_NOT_FOUND', new ContentNotFoundError('not published')],
    ['NO_SPACE', new NoSpaceError('disk full')],
    ['INTERNAL', new InternalError('bug')],
  ])('%s is never retried', async (_, err) => {
    const { job: j, retries } = job({ script: { fetchChunks: [err] } })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.error).toBe(err)
    expect(retries).toEqual([])
  })

  it('wraps an untyped error as InternalError', async () => {
    const { job: j } = job({ failAt: 'fetchChunks', error: new Error('boom') })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.status).toBe('failed')
    expect(out.error).toBeInstanceOf(InternalError)
    expect(out.error?.message).toBe('boom')
  })

  it('a transient failure goes through retrying, reconnects (resolve again) and completes', async () => {
    const cut = new StreamClosedError('connection lost')
    const { job: j, ran, retries } = job({ script: { fetchChunks: [cut] } })
    const actor = createActor(transferMachine, { input: j })
    const states: string[] = []
    actor.subscribe((s) => states.push(String(s.value)))
    const out = await toPromise(actor.start())
    expect(out).toEqual({ status: 'done' })
    expect(states).toEqual([
      'resolving',
      'fetching',
      'retrying',
      'resolving',
      'fetching',
      'finalizing',
      'done',
    ])
    expect(ran).toEqual(['resolve', 'fetchChunks', 'resolve', 'fetchChunks', 'finalize'])
    expect(retries).toHaveLength(1)
    expect(retries[0]).toMatchObject({ attempt: 1, maxAttempts: 4, error: cut })
  })

  it('gives up with RETRIES_EXHAUSTED after maxAttempts failures in a row without progress', async () => {
    const down = new PeerUnreachableError('no route')
    const { job: j, ran, retries } = job({ failAt: 'resolve', error: down })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.status).toBe('failed')
    expect(out.error).toBeInstanceOf(RetriesExhaustedError)
    expect(out.error?.code).toBe('RETRIES_EXHAUSTED')
    expect(out.error?.cause).toBe(down)
    expect(out.error?.message).toContain('PEER_UNREACHABLE')
    expect(ran).toEqual(['resolve', 'resolve', 'resolve', 'resolve'])
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3])
  })

  it('progress resets the attempt count: more cuts than maxAttempts still complete', async () => {
    const cuts = Array.from({ length: 9 }, () => new TimeoutError('idle'))
    const { job: j, retries } = job({ script: { fetchChunks: cuts }, progressOn: () => true })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out).toEqual({ status: 'done' })
    expect(retries).toHaveLength(9)
    expect(retries.every((r) => r.attempt === 1)).toBe(true)
  })

  it('a job may lower the attempt limit and pick the final error (first contact)', async () => {
    const down = new PeerUnreachableError('connection refused')
    const { job: j, ran, retries } = job({ failAt: 'resolve', error: down })
    const out = await toPromise(
      createActor(transferMachine, {
        input: { ...j, attemptLimit: () => 2, exhausted: (last) => last },
      }).start(),
    )
    expect(out.error).toBe(down)
    expect(ran).toEqual(['resolve', 'resolve'])
    expect(retries.map((r) => [r.attempt, r.maxAttempts])).toEqual([[1, 2]])
  })

  it('a job may declare its own retryable errors (canRetry)', async () => {
    const nf = new ContentNotFoundError('restarting')
    const { job: j, retries } = job({ script: { resolve: [nf] } })
    const out = await toPromise(
      createActor(transferMachine, { input: { ...j, canRetry: () => true } }).start(),
    )
    expect(out.status).toBe('done')
    expect(retries).toHaveLength(1)
  })

  it('cancel aborts the running step through its signal and ends cancelled', async () => {
    const { job: j, ran, aborted } = job({ hangAt: 'fetchChunks' })
    const actor = createActor(transferMachine, { input: j }).start()
    await new Promise<void>((resolve) => {
      const sub = actor.subscribe((s) => {
        if (s.value === 'fetching') {
          sub.unsubscribe()
          resolve()
        }
      })
    })
    actor.send({ type: 'cancel' })
    const out = await toPromise(actor)
    expect(out).toEqual({ status: 'cancelled' })
    expect(aborted).toEqual(['fetchChunks'])
    expect(ran).toEqual(['resolve', 'fetchChunks'])
  })

  it('cancel while finalizing is ignored: the file is complete, the transfer ends done', async () => {
    let release: () => void = () => {}
    const { job: j } = job()
    const actor = createActor(transferMachine, {
      input: { ...j, finalize: () => new Promise<void>((r) => (release = r)) },
    }).start()
    await new Promise<void>((resolve) => {
      const sub = actor.subscribe((s) => {
        if (s.value === 'finalizing') {
          sub.unsubscribe()
          resolve()
        }
      })
    })
    actor.send({ type: 'cancel' })
    expect(actor.getSnapshot().value).toBe('finalizing')
    release()
    expect(await toPromise(actor)).toEqual({ status: 'done' })
  })

  it('cancel during the backoff ends cancelled without reconnecting', async () => {
    const { job: j, ran } = job({
      script: { fetchChunks: [new StreamClosedError('cut')] },
      retry: {
        maxAttempts: 3,
        maxAttemptsFirstContact: 3,
        baseDelayMs: 60_000,
        maxDelayMs: 60_000,
        maxStallMs: 1,
      },
    })
    const actor = createActor(transferMachine, { input: j }).start()
    await new Promise<void>((resolve) => {
      const sub = actor.subscribe((s) => {
        if (s.value === 'retrying') {
          sub.unsubscribe()
          resolve()
        }
      })
    })
    actor.send({ type: 'cancel' })
    expect(await toPromise(actor)).toEqual({ status: 'cancelled' })
    expect(ran).toEqual(['resolve', 'fetchChunks'])
  })

  it('stopping the actor aborts the running step', async () => {
    const { job: j, aborted } = job({ hangAt: 'resolve' })
    const actor = createActor(transferMachine, { input: j }).start()
    await Promise.resolve()
    actor.stop()
    await new Promise((r) => setTimeout(r, 10))
    expect(aborted).toEqual(['resolve'])
  })

  it('a final state ignores later cancel', async () => {
    const { job: j } = job({ failAt: 'resolve', error: new ContentNotFoundError('no') })
    const actor = createActor(transferMachine, { input: j }).start()
    const out = await toPromise(actor)
    actor.send({ type: 'cancel' })
    expect(out.status).toBe('failed')
    expect(actor.getSnapshot().value).toBe('failed')
  })
})

describe('retry policy', () => {
  it('backoff doubles up to the ceiling, jittered within [cap/2, cap]', () => {
    const o: RetryOptions = {
      maxAttempts: 10,
      maxAttemptsFirstContact: 3,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      maxStallMs: 60_000,
    }
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, o, () => 1))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ])
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, o, () => 0))).toEqual([50, 100, 200, 400, 500])
    expect(backoffDelay(1000, o, () => 1)).toBe(1000)
  })

  it('classifies transient and permanent errors', () => {
    expect(isTransient(new StreamClosedError('x'))).toBe(true)
    expect(isTransient(new TimeoutError('x'))).toBe(true)
    expect(isTransient(new PeerUnreachableError('x'))).toBe(true)
    expect(isTransient(new ContentNotFoundError('x'))).toBe(false)
    expect(isTransient(new NoSpaceError('x'))).toBe(false)
    expect(isTransient(new Error('x'))).toBe(false)
  })
})
