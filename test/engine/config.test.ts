import { describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import { ConfigInvalidError } from '../../src/errors.ts'
import { MiB } from '../../src/types.ts'

describe('engine config: the memory budget and the fetch window', () => {
  it('defaults to a 16 MiB budget and a window of half of it', () => {
    const c = resolveEngineConfig({ workers: 1 })
    expect(c.memoryBudget).toBe(16 * MiB)
    expect(c.fetch.windowBytes).toBe(8 * MiB)
  })

  it('the default window follows the budget up to 16 MiB; a window given is kept as given', () => {
    expect(resolveEngineConfig({ workers: 1, memoryBudget: 64 * MiB }).fetch.windowBytes).toBe(16 * MiB)
    expect(resolveEngineConfig({ workers: 1, memoryBudget: 6 * MiB }).fetch.windowBytes).toBe(3 * MiB)
    const given = resolveEngineConfig({
      workers: 1,
      memoryBudget: 16 * MiB,
      fetch: { windowBytes: 16 * MiB },
    })
    expect(given.fetch.windowBytes).toBe(16 * MiB)
  })

  it('refuses a budget that cannot hold four chunks', () => {
    expect(() =>
      resolveEngineConfig({ workers: 1, memoryBudget: 8 * MiB, chunking: { kind: 'fixed', size: 4 * MiB } }),
    ).toThrow(ConfigInvalidError)
    const c = resolveEngineConfig({ workers: 1, chunking: { kind: 'fixed', size: 4 * MiB } })
    expect(c.fetch.windowBytes).toBe(8 * MiB)
  })
})
