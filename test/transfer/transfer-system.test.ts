import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { TransferJob } from '../../src/transfer/transfer-machine.ts'
import { outputOf, SHARDS, TransferSystem } from '../../src/transfer/transfer-system.ts'
import { eventually } from '../support/wait.ts'

/** A stand-in job whose fetch waits until `finish()` or until its state is left (cancel). */
function job() {
  const { promise: finished, resolve: finish } = Promise.withResolvers<void>()
  let aborted = false
  const j: TransferJob = {
    resolve: async () => {},
    fetchChunks: (signal) =>
      new Promise<void>((resolve, reject) => {
        void finished.then(resolve)
        signal.addEventListener('abort', () => {
          aborted = true
          reject(signal.reason)
        })
      }),
    finalize: async () => {},
    retry: { maxAttempts: 1, maxAttemptsFirstContact: 1, baseDelayMs: 1, maxDelayMs: 1, maxStallMs: 1 },
    progressMark: () => 0,
  }
  return { job: j, finish, wasAborted: () => aborted }
}

describe('TransferSystem', () => {
  it('spreads transfer machines over its shards, all in one actor system', async () => {
    const system = new TransferSystem()
    const n = SHARDS * 8 + 3
    const jobs = Array.from({ length: n }, () => job())
    const actors = jobs.map((j, i) => system.spawn(`t${i}`, j.job))
    // Each shard holds n / SHARDS, not n: the cost XState pays per spawn and stop.
    const loads = system.shardLoads()
    expect(loads.reduce((a, b) => a + b)).toBe(n)
    expect(Math.max(...loads)).toBe(Math.ceil(n / SHARDS))
    for (const a of actors) expect(a.system).toBe(system.system)
    await eventually(() => actors.every((a) => a.getSnapshot().value === 'fetching'), 'all fetching')
    for (const j of jobs) j.finish()
    const outputs = await Promise.all(actors.map(outputOf))
    expect(outputs.every((o) => o.status === 'done')).toBe(true)
    for (let i = 0; i < n; i++) system.reap(`t${i}`)
    expect(system.shardLoads()).toEqual(new Array(SHARDS).fill(0))
    system.stop()
  })

  it('names machines by reused slots, so XState sees a bounded set of child names', async () => {
    // Each child's end reaches its parent as `xstate.done.actor.<name>`, and XState caches per
    // event type on the shared machine: names that never repeat grew that cache for good.
    const system = new TransferSystem()
    const names = new Set<string>()
    const live = SHARDS * 2
    for (let round = 0; round < 5; round++) {
      const jobs = Array.from({ length: live }, () => job())
      const actors = jobs.map((j, i) => system.spawn(`r${round}-${i}`, j.job))
      for (const a of actors) names.add(a.id)
      for (const j of jobs) j.finish()
      await Promise.all(actors.map(outputOf))
      for (let i = 0; i < live; i++) system.reap(`r${round}-${i}`)
    }
    // 5 × 128 transfers, never more than 2 live per shard: 2 names.
    expect([...names].sort()).toEqual(['t0', 't1'])
    system.stop()
  })

  it('cancels only the named transfer, and a reaped id can run again', async () => {
    const system = new TransferSystem()
    const a = job()
    const b = job()
    const actorA = system.spawn('a', a.job)
    const actorB = system.spawn('b', b.job)
    await eventually(
      () => [actorA, actorB].every((x) => x.getSnapshot().value === 'fetching'),
      'both fetching',
    )
    system.cancel('a')
    expect(await outputOf(actorA)).toEqual({ status: 'cancelled' })
    expect(a.wasAborted()).toBe(true)
    expect(b.wasAborted()).toBe(false)
    expect(actorB.getSnapshot().value).toBe('fetching')
    // A live id cannot be spawned twice; once reaped, it can.
    expect(() => system.spawn('b', job().job)).toThrow(InvalidArgumentError)
    system.reap('a')
    const again = job()
    const actorA2 = system.spawn('a', again.job)
    again.finish()
    expect(await outputOf(actorA2)).toEqual({ status: 'done' })
    b.finish()
    expect(await outputOf(actorB)).toEqual({ status: 'done' })
    // Cancelling or reaping an unknown id is a no-op.
    system.cancel('nobody')
    system.reap('nobody')
    system.stop()
  })
})
