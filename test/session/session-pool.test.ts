import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import type { Engine } from '../../src/engine/engine.ts'
import { useEngines } from '../support/engines.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const KiB = 1024

/** Counts the streams the receiver opens from now on (each fetch that did not reuse an idle session opens one). */
function countOpens(engine: Engine): { readonly opened: number } {
  const before = engine.stats().network.streamsOpened
  return {
    get opened() {
      return engine.stats().network.streamsOpened - before
    },
  }
}

describe('sessions kept open between fetches from one peer', () => {
  const engines = useEngines({ workers: 1 })
  const receiver = engines.engine
  let sender: Engine
  const files: Array<{ src: string; ticket: string }> = []

  beforeAll(async () => {
    sender = await engines.engine({ chunking: { kind: 'fixed', size: 64 * KiB } })
    for (let i = 0; i < 4; i++) {
      const src = join(engines.dir, `f${i}.src`)
      await writeFile(src, 100 * KiB + i * 999, 'random', i)
      files.push({ src, ticket: (await sender.publish(src)).ticket })
    }
  })

  async function fetchAll(r: Engine, n: number, tag: string, concurrent = false): Promise<void> {
    const one = async (i: number): Promise<void> => {
      const f = files[i % files.length]!
      const dest = join(engines.dir, `${tag}-${i}.out`)
      const result = await r.fetch(f.ticket, dest).result
      expect(result.retries).toBe(0)
      expect(await sha256File(dest)).toBe(await sha256File(f.src))
    }
    if (concurrent) await Promise.all(Array.from({ length: n }, (_, i) => one(i)))
    else for (let i = 0; i < n; i++) await one(i)
  }

  it('fetches one after another share one stream, which closes once idle for sessions.idleMs', async () => {
    const r = await receiver({ sessions: { idleMs: 300 } })
    const opens = countOpens(r)
    await fetchAll(r, 12, 'seq')
    expect(opens.opened).toBe(1)
    expect(r.stats().network.openStreams).toBe(1)
    await eventually(() => r.stats().network.openStreams === 0, 'the idle session closed')
  })

  it('keeps at most sessions.maxIdle sessions once concurrent fetches finish', async () => {
    const r = await receiver({ sessions: { maxIdle: 3 } })
    const opens = countOpens(r)
    await fetchAll(r, 10, 'conc', true)
    expect(opens.opened).toBe(10)
    await eventually(() => r.stats().network.openStreams === 3, 'all but three sessions closed')
    // The next fetches take the three kept sessions before opening another stream.
    await fetchAll(r, 3, 'again', true)
    expect(opens.opened).toBe(10)
  })

  it('sessions.maxIdle 0: every fetch opens its own stream', async () => {
    const r = await receiver({ sessions: { maxIdle: 0 } })
    const opens = countOpens(r)
    await fetchAll(r, 5, 'off')
    expect(opens.opened).toBe(5)
    await eventually(() => r.stats().network.openStreams === 0, 'every stream closed')
  })

  it('a session the peer closed while it was idle is replaced by a fresh stream, not a retry', async () => {
    // This sender drops streams idle for 200 ms; the receiver would keep them for 2 s.
    const impatient = await engines.engine({ timeouts: { idleMs: 200 } })
    const f = files[0]!
    const ticket = (await impatient.publish(f.src)).ticket
    const r = await receiver()
    const opens = countOpens(r)
    await r.fetch(ticket, join(engines.dir, 'closed-1.out')).result
    await eventually(() => r.stats().network.openStreams === 0, 'the sender closed the idle stream')
    const second = await r.fetch(ticket, join(engines.dir, 'closed-2.out')).result
    expect(second.retries).toBe(0)
    expect(opens.opened).toBe(2)
    expect(await sha256File(join(engines.dir, 'closed-2.out'))).toBe(await sha256File(f.src))
  })

  it('stopping the engine closes its idle sessions', async () => {
    const r = await receiver()
    await fetchAll(r, 2, 'stop')
    expect(r.stats().network.openStreams).toBe(1)
    await r.stop()
    await eventually(() => sender.stats().network.openStreams === 0, "the sender's side of it closed")
  })

  it('refuses a pool that outlives the stream idle timeout, and a negative size', () => {
    expect(() => resolveEngineConfig({ sessions: { idleMs: 30_000 } })).toThrow(/sessions.idleMs/)
    expect(() => resolveEngineConfig({ sessions: { maxIdle: -1 } })).toThrow(/sessions.maxIdle/)
    // The default follows a shorter stream idle timeout down.
    expect(resolveEngineConfig({ timeouts: { idleMs: 1000 } }).sessions.idleMs).toBe(500)
  })
})
