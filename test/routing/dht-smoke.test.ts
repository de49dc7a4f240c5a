import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { createEngine, type Engine, type EngineOptions } from '../../src/index.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const stops: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()))
})
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
async function engine(opts: EngineOptions): Promise<Engine> {
  const e = await createEngine({ workers: 1, listen: LOOPBACK, ...opts })
  stops.push(() => e.stop())
  return e
}

it('smoke', async () => {
  const t = await tempDir('haul-dht-')
  stops.push(t.cleanup)
  const boot = await engine({ dht: { enabled: true } })
  const bootstrap = [boot.addresses[0]!]
  const seeders = await Promise.all([1, 2, 3].map(() => engine({ dht: { bootstrap } })))
  const file = join(t.dir, 'f.bin')
  await writeFile(file, 8 * 1024 * 1024 + 5, 'random', 7)
  const pubs = await Promise.all(seeders.map((s) => s.publish(file)))
  console.log(await Promise.all(pubs.map((p) => p.announced)))
  const rx = await engine({ dht: { bootstrap, refreshMs: 300 } })
  const t0 = performance.now()
  const h = rx.fetch(cidToString(pubs[0]!.index.cid), join(t.dir, 'out.bin'))
  const r = await h.result
  console.log(performance.now() - t0, JSON.stringify(r.swarm))
  expect(await sha256File(join(t.dir, 'out.bin'))).toBe(await sha256File(file))
}, 60_000)
