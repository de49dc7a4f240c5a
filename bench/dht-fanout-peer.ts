/**
 * One process of a bench/dht-fanout run (fork with IPC); runs the compiled code in dist/ (`npm run build`).
 *   seed <file> <dataDir> <uploadBytesPerSec|0>   starts a DHT, publishes (announced), reports its content id and
 *                                                 addresses, answers 'stats', serves until 'exit'
 *   get <dest> <bootstrap>                        joins the DHT, 'ready'; on 'go' fetches the content id with
 *                                                 `provide`, reports time, then serves others until 'exit'
 */
import { rm } from 'node:fs/promises'
import { cidToString } from '../dist/descriptor/cid.js'
import { Engine, engineInternals } from '../dist/engine/engine.js'
import { runMain } from './lib/ipc.ts'

const [mode, a, b, c] = process.argv.slice(2)
const send = (m: unknown) => process.send!(m)
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** Every peer here dials from 127.0.0.1: the per-address admission bounds are for other hosts. */
const ONE_HOST = {
  admission: {
    maxNewPerAddressPerSecond: 10_000,
    maxPendingPerAddress: 256,
    maxConnectionsPerAddress: 4_096,
  },
  maxConnections: 1_024,
}

function until(
  type: string,
  onOther: (m: { type: string; cid?: string }) => void = () => {},
): Promise<{ cid?: string }> {
  return new Promise((resolve) =>
    process.on('message', (m: { type: string; cid?: string }) => (m.type === type ? resolve(m) : onOther(m))),
  )
}

// Told to exit while waiting for anything else (the bench ends early): go at once.
process.on('message', (m: { type: string }) => {
  if (m.type === 'exit' && mode === 'get' && !going) process.exit(0)
})
let going = false

async function main(): Promise<void> {
  if (mode === 'seed') {
    const rate = Number(c)
    const engine = await Engine.create({
      listen: LOOPBACK,
      dataDir: b!,
      network: ONE_HOST,
      dht: { enabled: true },
      ...(rate > 0 ? { limits: { uploadBytesPerSec: rate, burstBytes: 2 * 1024 * 1024 } } : {}),
    })
    const { index } = await engine.publish(a!)
    send({ type: 'ready', cid: cidToString(index.cid), addresses: engine.addresses, chunks: index.chunks })
    await until('exit', (m) => {
      if (m.type === 'stats') send({ type: 'stats', stats: engine.stats() })
    })
    await engine.stop()
    return
  }
  if (mode === 'get') {
    const engine = await Engine.create({
      listen: LOOPBACK,
      workers: 1,
      network: ONE_HOST,
      dht: { bootstrap: [b!], refreshMs: 1_000 },
    })
    await engineInternals(engine).pool.hash(new Uint8Array(16)) // threads up before the clock starts
    send({ type: 'ready' })
    const { cid } = await until('go')
    going = true
    const t0 = performance.now()
    const r = await engine.fetch(cid!, a!, { provide: process.env.HAUL_DHT_FANOUT_PROVIDE !== '0' }).result
    const end = performance.now()
    const fromSeeder = r.swarm?.peers.find((p) => p.verifiedBytes === r.bytes) !== undefined
    send({
      type: 'done',
      seconds: (end - t0) / 1000,
      bytes: r.bytes,
      peers: r.swarm?.peers.length,
      fromSeeder,
    })
    await until('exit')
    await engine.stop()
    await rm(a!, { force: true })
    return
  }
  throw new Error(`unknown mode ${mode}`)
}

runMain(main)
