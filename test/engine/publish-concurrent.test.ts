import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createEngine } from '../../src/index.ts'
import { useEnginePair } from '../support/engine-pair.ts'
import { sha256File, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024

// Publishing one path twice at once must not race on one temporary descriptor file: each writer
// has its own and renames it into place.
describe.each([
  ['beside the file (no dataDir)', false],
  ['in the data folder', true],
])('concurrent publish of one path, descriptor %s', (_, withDataDir) => {
  const pair = useEnginePair({
    sender: (dir) => ({ workers: 2, ...(withDataDir ? { dataDir: join(dir, 'sender') } : {}) }),
  })

  it('every call resolves to the same content, and it is served whole', async () => {
    const { dir, sender, receiver } = pair
    const src = join(dir, 'shared.bin')
    await writeFile(src, 6 * MiB + 123, 'random')
    const all = await Promise.all([sender.publish(src), sender.publish(src), sender.publish(src)])
    const cids = new Set(all.map((p) => Buffer.from(p.index.cid).toString('hex')))
    expect(cids.size).toBe(1)
    for (const [i, p] of all.entries()) {
      const dst = join(dir, `copy-${i}.bin`)
      await receiver.fetch(p.ticket, dst).result
      expect(await sha256File(dst)).toBe(await sha256File(src))
    }
  })
})

describe('two engines without data folders publish one file at once (one descriptor beside it)', () => {
  const pair = useEnginePair()

  it('both publish the same content, no temporary file is left, and both serve it', async () => {
    const { dir, sender, receiver } = pair
    const other = await createEngine({ workers: 1 })
    try {
      const src = join(dir, 'twice.bin')
      await writeFile(src, 6 * MiB + 5, 'random')
      const [a, b] = await Promise.all([sender.publish(src), other.publish(src), sender.publish(src)])
      expect(Buffer.from(a!.index.cid).equals(Buffer.from(b!.index.cid))).toBe(true)
      expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([])
      for (const [i, p] of [a!, b!].entries()) {
        const dst = join(dir, `from-${i}.bin`)
        await receiver.fetch(p.ticket, dst).result
        expect(await sha256File(dst)).toBe(await sha256File(src))
      }
    } finally {
      await other.stop()
    }
  })
})

describe('a publish the engine stops under', () => {
  const pair = useEnginePair()

  it.each([
    ['a file indexed before (its descriptor reused)', true],
    ['a file being indexed', false],
  ])('%s: ABORTED, saying the engine stopped', async (_, indexedBefore) => {
    const { dir } = pair
    const src = join(dir, `stopped-${indexedBefore}.bin`)
    await writeFile(src, 24 * MiB + 7, 'random')
    const engine = await createEngine({ workers: 1, dataDir: join(dir, `data-${indexedBefore}`) })
    if (indexedBefore) await engine.publish(src)
    const settled = Promise.allSettled([engine.publish(src), engine.publishCollection([src])])
    await engine.stop()
    for (const r of await settled) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toMatchObject({
        code: 'ABORTED',
        message: expect.stringMatching(/engine stopped/),
      })
    }
  })
})
