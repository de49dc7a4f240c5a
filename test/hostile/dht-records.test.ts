import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { engineInternals } from '../../src/engine/engine.ts'
import { createNode } from '../../src/net/node.ts'
import { contentKey } from '../../src/routing/content-key.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { dhtEngines, LOOPBACK, ONE_HOST } from '../support/dht-engines.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024
const { stops, engine } = dhtEngines()

/** Announces `cid` from `dht` without serving it: a provider record that lies. */
async function announceFalsely(dht: KadDHT, cid: Uint8Array): Promise<void> {
  try {
    for await (const _ of dht.provide(contentKey(cid), { signal: AbortSignal.timeout(30_000) })) {
      // drained: the record goes to the closest peers
    }
  } catch {
    // Slow peers: the record is stored with those that answered, and with the liar itself.
  }
}

async function waitUntil(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}

/** A libp2p node on the DHT that does not speak haul's protocol at all. */
async function bareNode(bootstrap: string): Promise<Libp2p> {
  const node = await createNode({ listen: LOOPBACK, dht: true, admission: ONE_HOST.admission })
  stops.push(async () => {
    await node.stop()
  })
  await node.dial(multiaddr(bootstrap))
  return node
}

describe('provider records from the DHT are hostile input', () => {
  it('20 records that lie (haul engines without the content, nodes without haul): the receiver drops each and completes from the one honest seeder', async () => {
    const t = await tempDir('haul-dht-hostile-')
    stops.push(t.cleanup)
    const file = join(t.dir, 'f.bin')
    await writeFile(file, 8 * MiB + 9, 'random', 5)
    const boot = await engine({ dht: { enabled: true } })
    const bootstrap = [boot.addresses[0]!]
    const honest = await engine({ dht: { bootstrap } })
    const { index } = await honest.publish(file)
    const liars = await Promise.all(Array.from({ length: 12 }, () => engine({ dht: { bootstrap } })))
    const bare = await Promise.all(Array.from({ length: 8 }, () => bareNode(bootstrap[0]!)))
    await Promise.all([
      ...liars.map((l) => announceFalsely(engineInternals(l).network.dht!, index.cid)),
      ...bare.map((n) => announceFalsely((n.services as { dht: KadDHT }).dht, index.cid)),
    ])

    const receiver = await engine({ dht: { bootstrap } })
    const out = join(t.dir, 'out.bin')
    const result = await receiver.fetch(cidToString(index.cid), out).result
    expect(await sha256File(out)).toBe(await sha256File(file))
    const peers = result.swarm!.peers
    expect(peers.find((p) => p.peerId === honest.peerId)?.verifiedBytes).toBe(8 * MiB + 9)
    const hostile = new Set([...liars.map((l) => l.peerId), ...bare.map((n) => n.peerId.toString())])
    const tried = peers.filter((p) => hostile.has(p.peerId))
    expect(tried.length).toBeGreaterThan(0)
    // Each one tried gave nothing; those that answered before the end were dropped for it.
    for (const p of tried) expect(p.verifiedBytes).toBe(0)
    expect(tried.filter((p) => p.out !== undefined).length).toBeGreaterThan(0)
  }, 120_000)

  it('liars found first, the honest seeder announced only later: the fetch retries while the search goes on, and completes from it', async () => {
    const t = await tempDir('haul-dht-late-')
    stops.push(t.cleanup)
    const file = join(t.dir, 'f.bin')
    await writeFile(file, 4 * MiB + 1, 'random', 6)
    const boot = await engine({ dht: { enabled: true } })
    const bootstrap = [boot.addresses[0]!]
    const honest = await engine({ dht: { bootstrap } })
    // Its content id, from an index made before it publishes (the publish below announces it).
    const probe = await indexFile(file, {
      chunking: honest.config.chunking,
      pool: engineInternals(honest).pool,
      budget: engineInternals(honest).budget,
      descriptorPath: join(t.dir, 'probe.haul'),
    })
    const liars = await Promise.all(Array.from({ length: 4 }, () => engine({ dht: { bootstrap } })))
    await Promise.all(liars.map((l) => announceFalsely(engineInternals(l).network.dht!, probe.cid)))

    const receiver = await engine({ dht: { bootstrap, refreshMs: 300 } })
    const handle = receiver.fetch(cidToString(probe.cid), join(t.dir, 'out.bin'))
    // Every liar refused it: the fetch waits between attempts (the search goes on) instead of failing.
    await waitUntil(() => handle.status() === 'retrying')
    expect(handle.swarmStats()?.peers.length).toBe(liars.length)
    await honest.publish(file)
    const result = await handle.result
    expect(await sha256File(join(t.dir, 'out.bin'))).toBe(await sha256File(file))
    expect(result.swarm!.peers.find((p) => p.peerId === honest.peerId)?.verifiedBytes).toBe(4 * MiB + 1)
    expect(result.retries).toBeGreaterThan(0)
  }, 120_000)

  it('a flood of records costs at most dht.maxProviders providers tried, whatever comes of the fetch', async () => {
    const t = await tempDir('haul-dht-flood-')
    stops.push(t.cleanup)
    const boot = await engine({ dht: { enabled: true } })
    const bootstrap = [boot.addresses[0]!]
    const cid = new Uint8Array(32).fill(9)
    const liars = await Promise.all(Array.from({ length: 16 }, () => engine({ dht: { bootstrap } })))
    await Promise.all(liars.map((l) => announceFalsely(engineInternals(l).network.dht!, cid)))

    const receiver = await engine({ dht: { bootstrap, maxProviders: 3, refreshMs: 100, lookupMs: 3_000 } })
    const handle = receiver.fetch(cidToString(cid), join(t.dir, 'none.bin'))
    const err = await handle.result.catch((e: unknown) => e)
    // No one has it: the fetch fails as a fetch from liars fails (CONTENT_NOT_FOUND from each).
    expect(err).toMatchObject({ code: 'CONTENT_NOT_FOUND' })
    expect(handle.swarmStats()?.peers.length ?? 0).toBeLessThanOrEqual(3)
  }, 120_000)
})
