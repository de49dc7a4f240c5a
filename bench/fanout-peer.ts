/**
 * One process of a bench/fanout run (fork with IPC); runs the compiled code in dist/ (`npm run build`).
 *   seed <file> <dataDir> <serveCacheBytes|default> <memoryBudget|default>   publish, report the ticket, answer 'stats', serve until 'exit'
 *   get <dest>                                        engine up, 'ready'; on 'go' fetch the ticket, report time and bytes
 */
import { rm } from 'node:fs/promises'
import { Engine, engineInternals } from '../dist/engine/engine.js'
import { runMain } from './lib/ipc.ts'

const [mode, a, b, c, d] = process.argv.slice(2)
const send = (m: unknown) => process.send!(m)
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

function onMessage(handle: (m: { type: string; ticket?: string }) => void): void {
  process.on('message', handle)
}

async function main(): Promise<void> {
  if (mode === 'seed') {
    const engine = await Engine.create({
      listen: LOOPBACK,
      dataDir: b!,
      ...(c === 'default' ? {} : { serveCacheBytes: Number(c) }),
      ...(d === 'default' ? {} : { memoryBudget: Number(d) }),
    })
    const { ticket } = await engine.publish(a!)
    send({ type: 'ready', ticket })
    await new Promise<void>((resolve) =>
      onMessage((m) => {
        if (m.type === 'stats') {
          send({ type: 'stats', stats: engine.stats(), peakRss: process.resourceUsage().maxRSS * 1024 })
        }
        if (m.type === 'exit') resolve()
      }),
    )
    await engine.stop()
    return
  }
  if (mode === 'get') {
    // 50 receivers dial one seeder at once on a loaded machine: handshakes may take past the default 10 s.
    const engine = await Engine.create({ listen: LOOPBACK, workers: 1, timeouts: { connectMs: 60_000 } })
    await engineInternals(engine).pool.hash(new Uint8Array(16)) // threads up before the clock starts
    const ticket = await new Promise<string>((resolve) => {
      onMessage((m) => m.type === 'go' && resolve(m.ticket!))
      send({ type: 'ready' })
    })
    const t0 = performance.now()
    const r = await engine.fetch(ticket, a!).result
    const end = performance.now()
    await engine.stop()
    await rm(a!, { force: true })
    send({ type: 'done', seconds: (end - t0) / 1000, bytes: r.bytes, endedAt: performance.timeOrigin + end })
    return
  }
  throw new Error(`unknown mode ${mode}`)
}

runMain(main)
