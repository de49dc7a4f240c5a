/**
 * One process of a bench/dht-fanout run (fork with IPC); runs the compiled code in dist/ (`npm run build`).
 *   seed <file> <dataDir> <uploadBytesPerSec|0>   starts a DHT, publishes (announced), reports its content id and
 *                                                 addresses, answers 'stats', serves until 'exit'
 *   get <destPrefix> <bootstrap> <count>          starts <count> engines, each joining the DHT, 'ready'; on 'go'
 *                                                 each fetches the content id with `provide` (to <destPrefix>-<i>),
 *                                                 'done' with every engine's outcome, then serves others until 'exit'
 */
import { rm } from 'node:fs/promises'
import { cidToString } from '../dist/descriptor/cid.js'
import { Engine, engineInternals } from '../dist/engine/engine.js'
import { runMain } from './lib/ipc.ts'

const [mode, a, b, c] = process.argv.slice(2)
const send = (m: unknown) => process.send!(m)
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** How often a receiver looks for more providers: others become providers within seconds of the start. */
const REFRESH_MS = 5_000
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
    const spreadMs = process.env.HAUL_DHT_FANOUT_SPREAD_MS
    const engine = await Engine.create({
      listen: LOOPBACK,
      dataDir: b!,
      network: ONE_HOST,
      dht: { enabled: true },
      ...(rate > 0 ? { limits: { uploadBytesPerSec: rate, burstBytes: 2 * 1024 * 1024 } } : {}),
      ...(spreadMs === undefined ? {} : { server: { spreadMs: Number(spreadMs) } }),
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
    const engines = await Promise.all(
      Array.from({ length: Number(c) }, () =>
        Engine.create({
          listen: LOOPBACK,
          workers: 1,
          network: ONE_HOST,
          dht: { bootstrap: [b!], refreshMs: REFRESH_MS },
        }),
      ),
    )
    // Threads up before the clock starts.
    await Promise.all(engines.map((e) => engineInternals(e).pool.hash(new Uint8Array(16))))
    send({ type: 'ready' })
    const { cid } = await until('go')
    going = true
    const provide = process.env.HAUL_DHT_FANOUT_PROVIDE !== '0'
    const t0 = performance.now()
    const results = await Promise.all(
      engines.map(async (engine, i) => {
        try {
          const r = await engine.fetch(cid!, `${a}-${i}`, { provide }).result
          return {
            seconds: (performance.now() - t0) / 1000,
            bytes: r.bytes,
            peers: r.swarm?.peers.length,
            duplicateBytes: r.swarm?.duplicateBytes ?? 0,
            fromSeeder: r.swarm?.peers.find((p) => p.verifiedBytes === r.bytes) !== undefined,
          }
        } catch (err) {
          console.error(err)
          return { error: (err as { code?: string }).code ?? String(err) }
        }
      }),
    )
    send({ type: 'done', results })
    await until('exit')
    await Promise.all(engines.map((e) => e.stop()))
    await Promise.all(engines.map((_, i) => rm(`${a}-${i}`, { force: true })))
    return
  }
  throw new Error(`unknown mode ${mode}`)
}

runMain(main)
