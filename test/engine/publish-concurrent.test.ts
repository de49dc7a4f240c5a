import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { useEnginePair } from '../support/engine-pair.ts'
import { sha256File, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024

// Publishing one path twice at once used to race on one descriptor file (`<descriptor>.tmp`,
// then a rename): both writers truncated and wrote the same temporary file.
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
