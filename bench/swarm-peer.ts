/**
 * One process of a bench/swarm run (fork with IPC); runs the compiled code in dist/ (`npm run build`).
 *   seed <file> <bytesPerSec> <dataDir> <burstBytes> [dht]   haul engine, upload-limited: publish, report the
 *       ticket (its content id and addresses), serve until told to exit; `dht`: `start` runs a DHT,
 *       a multiaddr joins one through that peer (bench/dht-swarm.ts)
 *   get <ticket> <dest>         haul engine: multi-peer fetch, report time and the swarm figures
 */
import { cidToString } from '../dist/descriptor/cid.js'
import { Engine, engineInternals } from '../dist/engine/engine.js'
import { runMain } from './lib/ipc.ts'

const [mode, a, b, c, d, dht] = process.argv.slice(2)
const send = (m: unknown) => process.send!(m)

async function main(): Promise<void> {
  if (mode === 'seed') {
    // Its own data folder: four seeders indexing one file must not share the descriptor beside it.
    const engine = await Engine.create({
      workers: 1,
      dataDir: c!,
      limits: { uploadBytesPerSec: Number(b), burstBytes: Number(d) },
      ...(dht === undefined ? {} : { listen: ['/ip4/127.0.0.1/tcp/0'] }),
      ...(dht === undefined ? {} : { dht: dht === 'start' ? { enabled: true } : { bootstrap: [dht] } }),
    })
    const { ticket, index, announced } = await engine.publish(a!)
    await announced
    send({ type: 'ready', ticket, cid: cidToString(index.cid), addresses: engine.addresses })
    await new Promise<void>((resolve) =>
      process.on('message', (m: { type: string }) => m.type === 'exit' && resolve()),
    )
    await engine.stop()
    return
  }
  if (mode === 'get') {
    const engine = await Engine.create({ workers: 2 })
    await engineInternals(engine).pool.hash(new Uint8Array(16)) // threads up before the clock starts
    const t0 = performance.now()
    const r = await engine.fetch(a!, b!).result
    const seconds = (performance.now() - t0) / 1000
    await engine.stop()
    send({ type: 'stats', seconds, bytes: r.bytes, swarm: r.swarm })
    return
  }
  throw new Error(`unknown mode ${mode}`)
}

runMain(main)
