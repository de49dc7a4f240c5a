import { afterAll, beforeAll } from 'vitest'
import { Engine, type EngineOptions } from '../../src/index.ts'
import { tempDir } from './files.ts'

export interface EnginePair {
  /** A temporary folder, removed after the suite. */
  dir: string
  sender: Engine
  receiver: Engine
}

/**
 * A sending and a receiving engine for the surrounding describe block, started before its tests
 * and stopped after them. `sender` gets the temporary folder, for a data folder inside it.
 */
export function useEnginePair(
  opts: { sender?: (dir: string) => EngineOptions; receiver?: EngineOptions } = {},
): EnginePair {
  const pair = {} as EnginePair
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    const t = await tempDir()
    pair.dir = t.dir
    cleanup = t.cleanup
    pair.sender = await Engine.create(opts.sender?.(t.dir) ?? { workers: 1 })
    pair.receiver = await Engine.create(opts.receiver ?? { workers: 1 })
  })
  afterAll(async () => {
    await Promise.all([pair.sender?.stop(), pair.receiver?.stop()])
    await cleanup?.()
  })
  return pair
}
