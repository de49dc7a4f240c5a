/**
 * A multi-peer fetch: two engines serve the same file, one ticket names both, and the receiver
 * pulls different chunks from each at once (rarest first, in proportion to each peer's rate).
 *
 *   npx node examples/multi-peer.ts
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, HaulError, joinTickets } from '../src/index.ts'

const MiB = 1024 * 1024
const dir = await mkdtemp(join(tmpdir(), 'haul-example-'))
const source = join(dir, 'data.bin')
const dest = join(dir, 'copy.bin')
await writeFile(source, randomBytes(16 * MiB))

// Each seeder keeps its descriptor in its own data folder (without one, it goes beside the file,
// where two engines would write the same one), and its uploads are limited to 8 MiB/s so that
// neither serves the whole file before the other is asked.
const seeders = await Promise.all(
  ['a', 'b'].map((name) =>
    createEngine({ dataDir: join(dir, `seeder-${name}`), limits: { uploadBytesPerSec: 8 * MiB } }),
  ),
)
const receiver = await createEngine()
try {
  const tickets = await Promise.all(seeders.map(async (s) => (await s.publish(source)).ticket))
  const ticket = joinTickets(tickets) // one haul1… ticket naming both providers

  const r = await receiver.fetch(ticket, dest, { signal: AbortSignal.timeout(60_000) }).result
  if (!(await readFile(source)).equals(await readFile(dest))) throw new Error('the copy differs')
  console.log(`fetched ${r.bytes} bytes in ${r.seconds.toFixed(1)} s from ${r.swarm?.peers.length} peers`)
  for (const p of r.swarm?.peers ?? []) {
    console.log(`  peer ${p.peerId.slice(-8)}: ${(p.verifiedBytes / MiB).toFixed(0)} MiB verified`)
  }
} catch (err) {
  if (err instanceof HaulError) console.error(`failed [${err.code}]: ${err.message}`)
  else console.error(err)
  process.exitCode = 1
} finally {
  await Promise.all([...seeders, receiver].map((e) => e.stop()))
  await rm(dir, { recursive: true, force: true })
}
