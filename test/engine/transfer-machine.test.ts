import { describe, expect, it } from 'vitest'
import { createActor, toPromise } from 'xstate'
import { type TransferJob, transferMachine } from '../../src/engine/transfer-machine.ts'
import { ChunkVerificationError, InternalError, TimeoutError } from '../../src/errors.ts'

type Step = keyof TransferJob

/** A stand-in job: records the steps it ran and can fail or hang at one of them. */
function job(opts: { failAt?: Step; error?: unknown; hangAt?: Step } = {}) {
  const ran: Step[] = []
  const aborted: Step[] = []
  const step = (name: Step) => async (signal: AbortSignal) => {
    ran.push(name)
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
  }
  return { job: j, ran, aborted }
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
  ])('a typed error in %s fails the transfer with that error', async (at, expected) => {
    const err = new ChunkVerificationError('chunk 3 failed verification 3 times')
    const { job: j, ran } = job({ failAt: at, error: err })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.status).toBe('failed')
    expect(out.error).toBe(err)
    expect(ran).toEqual(expected)
  })

  it('wraps an untyped error as InternalError', async () => {
    const { job: j } = job({ failAt: 'fetchChunks', error: new Error('boom') })
    const out = await toPromise(createActor(transferMachine, { input: j }).start())
    expect(out.status).toBe('failed')
    expect(out.error).toBeInstanceOf(InternalError)
    expect(out.error?.message).toBe('boom')
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

  it('stopping the actor aborts the running step', async () => {
    const { job: j, aborted } = job({ hangAt: 'resolve' })
    const actor = createActor(transferMachine, { input: j }).start()
    await Promise.resolve()
    actor.stop()
    await new Promise((r) => setTimeout(r, 10))
    expect(aborted).toEqual(['resolve'])
  })

  it('a final state ignores later cancel', async () => {
    const { job: j } = job({ failAt: 'resolve', error: new TimeoutError('no answer') })
    const actor = createActor(transferMachine, { input: j }).start()
    const out = await toPromise(actor)
    actor.send({ type: 'cancel' })
    expect(out.status).toBe('failed')
    expect(actor.getSnapshot().value).toBe('failed')
  })
})
