import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { ServeEvent } from '../../src/index.ts'
import type { Codec } from '../../src/types.ts'
import type { CodecPolicy } from '../../src/workers/codecs.ts'
import { useEngines } from '../support/engines.ts'
import { sha256File, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const KiB = 1024
const SIZE = 1024 * KiB + 5
const CHUNK = 64 * KiB

/**
 * The receiver's hello names the codecs it takes (`fetch.codecs`); the sender encodes for it
 * only in those, whatever its own codec says. Real engines, compressible text; what went out
 * is read from the sender's serve events (chunk bytes against payload bytes on the wire).
 */
describe('a receiver gets chunks only in the codecs its hello offers (real engines)', () => {
  const engines = useEngines({ workers: 1, chunking: { kind: 'fixed', size: CHUNK } })
  const engine = engines.engine
  let src: string

  beforeAll(async () => {
    src = join(engines.dir, 'text.src')
    await writeFile(src, SIZE, 'text')
  })

  /** Fetches the file from a sender whose codec is `codec` into a receiver taking `codecs`; returns wire / chunk bytes. */
  async function wireRatio(codec: CodecPolicy, codecs: readonly Codec[] | undefined): Promise<number> {
    const sender = await engine({ codec, serveCacheBytes: 0 })
    const receiver = await engine(codecs === undefined ? {} : { fetch: { codecs } })
    const served: Array<Extract<ServeEvent, { type: 'chunks-served' }>> = []
    sender.onServe((e) => {
      if (e.type === 'chunks-served') served.push(e)
    })
    const { ticket } = await sender.publish(src)
    const dest = join(engines.dir, `${codec}-${codecs?.join('+') ?? 'default'}.out`)
    await receiver.fetch(ticket, dest).result
    expect(await sha256File(dest)).toBe(await sha256File(src))
    const sum = (k: 'bytes' | 'wireBytes') => served.reduce((n, e) => n + e[k], 0)
    await eventually(() => sum('bytes') === SIZE, 'every chunk reported')
    return sum('wireBytes') / sum('bytes')
  }

  it("zstd: plain for a receiver taking ['none'], compressed for one taking the default", async () => {
    expect(await wireRatio('zstd', ['none'])).toBe(1)
    expect(await wireRatio('zstd', undefined)).toBeLessThan(0.9)
  })

  it('lz4: plain for a receiver that takes zstd but not lz4, compressed for one that takes lz4', async () => {
    expect(await wireRatio('lz4', ['none', 'zstd'])).toBe(1)
    expect(await wireRatio('lz4', ['none', 'lz4'])).toBeLessThan(0.9)
  })

  it("auto: plain for a receiver taking ['none'], whatever the measured choice would be", async () => {
    expect(await wireRatio('auto', ['none'])).toBe(1)
    expect(await wireRatio('auto', ['none', 'zstd'])).toBeLessThan(0.9)
  })
})
