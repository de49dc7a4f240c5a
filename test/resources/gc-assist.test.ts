import { getHeapStatistics } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import { ConfigInvalidError } from '../../src/errors.ts'
import { GcAssist, MIN_GC_ASSIST_BYTES } from '../../src/resources/gc-assist.ts'

const MiB = 1024 * 1024

describe('GcAssist', () => {
  it('collects once external memory is a step above the lowest level since the last collection', () => {
    let external = 100 * MiB
    let collected = 0
    const gc = new GcAssist(16 * MiB, {
      readExternal: () => external,
      collect: () => {
        collected++
        external = 110 * MiB // what a collection leaves (it may run later: async)
      },
    })
    external = 115 * MiB
    gc.check()
    expect(collected).toBe(0)
    external = 90 * MiB // freed by V8 on its own: the floor follows
    gc.check()
    external = 105 * MiB // 15 MiB above the new floor: not yet
    gc.check()
    expect(collected).toBe(0)
    external = 106 * MiB
    gc.check()
    expect(collected).toBe(1)
    expect(gc.collections).toBe(1)
    // The floor is what the collection left, not the level that triggered it.
    external = 125 * MiB
    gc.check()
    expect(collected).toBe(1)
    external = 126 * MiB
    gc.check()
    expect(collected).toBe(2)
  })

  it("with V8's own hooks: a step of dropped ArrayBuffers is collected", async () => {
    const gc = new GcAssist(MIN_GC_ASSIST_BYTES)
    // 32 MiB that nothing references once this returns.
    const held = ((garbage: ArrayBuffer[]) => garbage.length && getHeapStatistics().external_memory)(
      Array.from({ length: 32 }, () => new ArrayBuffer(MiB)),
    )
    // Keep allocating until a check crosses the step (the floor was read with the garbage live).
    const more: ArrayBuffer[] = []
    for (let i = 0; i < 64 && gc.collections === 0; i++) {
      more.push(new ArrayBuffer(MiB))
      gc.check()
    }
    expect(gc.collections).toBe(1)
    more.length = 0
    // The collection runs from a V8 task: give it a few turns of the event loop.
    for (let i = 0; i < 50 && getHeapStatistics().external_memory >= held; i++) {
      await new Promise((r) => setTimeout(r, 10))
    }
    expect(getHeapStatistics().external_memory).toBeLessThan(held)
  })

  it('is off by default and refuses a step under 4 MiB or not a whole number of bytes', () => {
    expect(resolveEngineConfig({}).gcAssistBytes).toBe(0)
    expect(resolveEngineConfig({ gcAssistBytes: 16 * MiB }).gcAssistBytes).toBe(16 * MiB)
    for (const bad of [MiB, -1, 4.5 * MiB + 0.5, Number.NaN]) {
      expect(() => resolveEngineConfig({ gcAssistBytes: bad })).toThrow(ConfigInvalidError)
    }
  })
})
