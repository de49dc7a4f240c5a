import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { useEngines } from '../support/engines.ts'

const LISTEN = ['/ip4/127.0.0.1/tcp/0']

/** A small folder no earlier iteration published: its manifest is not yet in the descriptors folder. */
async function folder(dir: string, i: number): Promise<string> {
  const root = join(dir, `folder-${i}`)
  await mkdir(join(root, 'sub'), { recursive: true })
  await writeFile(join(root, 'a.txt'), `first file of folder ${i}\n`)
  await writeFile(join(root, 'sub', 'b.txt'), `second file of folder ${i}\n`.repeat(50))
  return root
}

// Two publishes of one new folder at once used to both find its manifest missing and both write
// it into place: the second rename replaced the file the first was indexing (CONTENT_CHANGED).
describe('one folder published twice at once', () => {
  const engines = useEngines({ listen: LISTEN, workers: 1 })

  it('in one engine: both calls resolve with the same ticket', async () => {
    const s = await engines.engine({ dataDir: join(engines.dir, 'one') })
    for (let i = 0; i < 20; i++) {
      const dir = await folder(engines.dir, i)
      const [a, b] = await Promise.all([s.publishCollection([dir]), s.publishCollection([dir])])
      expect(b.ticket).toBe(a.ticket)
    }
  })

  it('in two engines sharing one data folder: both resolve with the same content id', async () => {
    const data = join(engines.dir, 'shared')
    const [s, t] = await Promise.all([engines.engine({ dataDir: data }), engines.engine({ dataDir: data })])
    for (let i = 100; i < 120; i++) {
      const dir = await folder(engines.dir, i)
      const [a, b] = await Promise.all([s.publishCollection([dir]), t.publishCollection([dir])])
      expect(Buffer.from(b.index.cid).equals(Buffer.from(a.index.cid))).toBe(true)
    }
  })
})
