import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Engine, TransferProgress } from '../../src/index.ts'
import type { ChunkingParams } from '../../src/types.ts'
import { useEngines } from '../support/engines.ts'
import { type Content, sha256File, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024
const CHUNK = MiB

// Boundary sizes around the chunk size, like iroh-blobs' INTERESTING_SIZES.
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]

describe('verified transfer between two real libp2p engines', () => {
  const engines = useEngines({ workers: 2 })
  let pairs = 0

  async function pair(chunking: ChunkingParams): Promise<[Engine, Engine]> {
    const sender = await engines.engine({ chunking, dataDir: join(engines.dir, `s-${pairs++}`) })
    const receiver = await engines.engine()
    return [sender, receiver]
  }

  const cases: Array<[string, ChunkingParams, Content]> = [
    ['fixed 1 MiB, random', { kind: 'fixed', size: CHUNK }, 'random'],
    ['fixed 1 MiB, text', { kind: 'fixed', size: CHUNK }, 'text'],
    ['cdc, random', { kind: 'cdc', minSize: 256 * 1024, avgSize: CHUNK, maxSize: 4 * MiB }, 'random'],
    ['cdc, text', { kind: 'cdc', minSize: 256 * 1024, avgSize: CHUNK, maxSize: 4 * MiB }, 'text'],
  ]

  for (const [name, chunking, content] of cases) {
    it(`${name}: sizes ${SIZES.join(', ')} arrive byte-identical`, async () => {
      const [sender, receiver] = await pair(chunking)
      for (const size of SIZES) {
        const src = join(engines.dir, `${name}-${size}.src`.replace(/[^\w.-]/g, '_'))
        const dst = `${src}.out`
        await writeFile(src, size, content, size)
        const { ticket } = await sender.publish(src)
        const result = await receiver.fetch(ticket, dst).result
        expect(result.bytes).toBe(size)
        expect(await sha256File(dst)).toBe(await sha256File(src))
        expect(existsSync(`${dst}.part`)).toBe(false)
      }
    })
  }

  it('a ~100 MiB random file arrives verified, with progress reported', async () => {
    const [sender, receiver] = await pair({ kind: 'fixed', size: CHUNK })
    const src = join(engines.dir, 'big.src')
    await writeFile(src, 100 * MiB + 12345, 'random')
    const { ticket } = await sender.publish(src)
    const seen: TransferProgress[] = []
    const handle = receiver.fetch(ticket, join(engines.dir, 'big.out'), { onProgress: (p) => seen.push(p) })
    const result = await handle.result
    expect(result.bytes).toBe(100 * MiB + 12345)
    expect(await sha256File(join(engines.dir, 'big.out'))).toBe(await sha256File(src))
    expect(seen.length).toBeGreaterThan(1)
    expect(seen.at(-1)!.bytesDone).toBe(result.bytes)
    // progress never goes backwards
    for (let i = 1; i < seen.length; i++)
      expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone)
    expect(handle.status()).toBe('done')
    expect(receiver.stats().memory.workBytes).toBe(0)
    expect(sender.stats().memory.workBytes).toBe(0)
  })
})
