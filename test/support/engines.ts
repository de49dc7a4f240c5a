import { afterAll, beforeAll } from 'vitest'
import { Engine, type EngineOptions } from '../../src/index.ts'
import { tempDir } from './files.ts'

export interface Engines {
  /** A temporary folder for the suite's files, removed after it (set once its beforeAll ran). */
  readonly dir: string
  /** A new engine with `base` and then `opts`; stopped after the suite. */
  engine(opts?: EngineOptions): Promise<Engine>
}

/**
 * Engines made as a describe block's tests need them, all stopped after its tests, and a
 * temporary folder beside them (useEnginePair when one fixed pair serves the whole block).
 */
export function useEngines(base: EngineOptions): Engines {
  const started: Engine[] = []
  let dir: string | undefined
  let cleanup: (() => Promise<void>) | undefined
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(async () => {
    await Promise.all(started.map((e) => e.stop()))
    await cleanup?.()
  })
  return {
    get dir(): string {
      if (dir === undefined) throw new Error('useEngines: dir is made in beforeAll')
      return dir
    },
    async engine(opts: EngineOptions = {}): Promise<Engine> {
      const e = await Engine.create({ ...base, ...opts })
      started.push(e)
      return e
    },
  }
}
