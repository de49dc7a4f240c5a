/**
// Benchmark children run the compiled code in dist/ (what `haul` and embedders run; `npm run build`).
 * One side of a bench/transfer run, in its own process (fork with IPC).
 *   send <file>        haul engine: publish, report the ticket, serve until told to exit
 *   get <ticket> <dst> haul engine: fetch, report time
 *   naive-send <file>  the old way: read the whole file into memory, send it in one go
 *   naive-get <addrs> <peer> <dst>  receive it all into memory, then write it out
 * Every process reports its idle and peak RSS.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { parseChunking } from '../dist/chunking/params.js'
import { Engine, engineInternals } from '../dist/engine/engine.js'
import { Network } from '../dist/net/network.js'
import { runMain } from './lib/ipc.ts'
import { resetPeakRss, rssNow } from './lib/proc.ts'

const NAIVE = '/haul-bench/naive/1.0.0'
const [mode, a, b, c] = process.argv.slice(2)
const send = (m: unknown) => process.send!(m)
/** CPU seconds of every thread of this process (main + workers + libuv). */
const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
/** Engine options from the environment, for trying settings side by side. */
function engineOptions() {
  const n = (k: string) => (process.env[k] === undefined ? undefined : Number(process.env[k]))
  const MiB = 1024 * 1024
  return {
    workers: n('HAUL_BENCH_WORKERS') ?? 2,
    ...(n('HAUL_BENCH_BUDGET_MIB') === undefined ? {} : { memoryBudget: n('HAUL_BENCH_BUDGET_MIB')! * MiB }),
    ...(process.env.HAUL_BENCH_CHUNKING === undefined
      ? {}
      : { chunking: parseChunking(process.env.HAUL_BENCH_CHUNKING) }),
    ...(process.env.HAUL_BENCH_CODEC === undefined ? {} : { codec: process.env.HAUL_BENCH_CODEC as 'none' }),
    fetch: {
      ...(n('HAUL_BENCH_WINDOW_MIB') === undefined ? {} : { windowBytes: n('HAUL_BENCH_WINDOW_MIB')! * MiB }),
      ...(n('HAUL_BENCH_CHUNKS_PER_REQUEST') === undefined
        ? {}
        : { chunksPerRequest: n('HAUL_BENCH_CHUNKS_PER_REQUEST')! }),
    },
    server: {
      ...(n('HAUL_BENCH_READ_AHEAD') === undefined ? {} : { readAhead: n('HAUL_BENCH_READ_AHEAD')! }),
    },
    ...(n('HAUL_BENCH_RECYCLE_MIB') === undefined
      ? {}
      : { buffers: { maxIdleBytes: n('HAUL_BENCH_RECYCLE_MIB')! * MiB } }),
    ...(n('HAUL_BENCH_GC_ASSIST_MIB') === undefined
      ? {}
      : { gcAssistBytes: n('HAUL_BENCH_GC_ASSIST_MIB')! * MiB }),
    ...(n('HAUL_BENCH_DIRECT') === undefined
      ? {}
      : { directWrites: { enabled: n('HAUL_BENCH_DIRECT') === 1 } }),
  }
}
/** CPU seconds per thread name (node main, libuv workers, worker threads), from /proc. */
function threadCpu(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100
    } catch {}
  }
  return out
}
const waitExit = () =>
  new Promise<void>((resolve) =>
    process.on('message', (m: { type: string }) => m.type === 'exit' && resolve()),
  )
// The bench went away (killed, or it gave up): so does its peer.
process.once('disconnect', () => process.exit(0))

/**
 * Idle = the process ready to transfer (engine up, worker threads started, the sender's
 * file published); the kernel's peak mark is reset there so `peak` is the transfer's alone.
 */
let cpuAtIdle = 0
function markIdle(): number {
  resetPeakRss()
  cpuAtIdle = cpuSeconds()
  return rssNow().rss
}
const peakRss = () => rssNow().peak

async function main(): Promise<void> {
  switch (mode) {
    case 'send': {
      const engine = await Engine.create(engineOptions())
      const { ticket } = await engine.publish(a!)
      const idleRss = markIdle()
      send({ type: 'ready', ticket, idleRss })
      await waitExit()
      const peak = peakRss()
      await engine.stop()
      send({
        type: 'stats',
        peakRss: peak,
        idleRss,
        cpuSeconds: cpuSeconds() - cpuAtIdle,
        threads: threadCpu(),
      })
      return
    }
    case 'get': {
      const engine = await Engine.create(engineOptions())
      await engineInternals(engine).pool.hash(new Uint8Array(16)) // threads up: part of idle, not of the transfer
      const idleRss = markIdle()
      const t0 = performance.now()
      const r = await engine.fetch(a!, b!).result
      const seconds = (performance.now() - t0) / 1000
      const peak = peakRss()
      await engine.stop()
      send({
        type: 'stats',
        seconds,
        bytes: r.bytes,
        peakRss: peak,
        idleRss,
        cpuSeconds: cpuSeconds() - cpuAtIdle,
        threads: threadCpu(),
      })
      return
    }
    case 'naive-send': {
      const net = await Network.create({})
      await net.handle(NAIVE, async (stream) => {
        const whole = await readFile(a!) // the whole file in memory, as the product used to do
        await stream.write([whole])
        await stream.closeWrite()
      })
      const idleRss = markIdle()
      send({ type: 'ready', peerId: net.peerId, addrs: net.addresses, idleRss })
      await waitExit()
      const peak = peakRss()
      await net.stop()
      send({
        type: 'stats',
        peakRss: peak,
        idleRss,
        cpuSeconds: cpuSeconds() - cpuAtIdle,
        threads: threadCpu(),
      })
      return
    }
    case 'naive-get': {
      const net = await Network.create({})
      const idleRss = markIdle()
      const t0 = performance.now()
      const stream = await net.openStream(b!, a!.split(','), NAIVE)
      const parts: Uint8Array[] = []
      for await (const d of stream.incoming) parts.push(d instanceof Uint8Array ? d : d.subarray())
      await writeFile(c!, Buffer.concat(parts))
      const seconds = (performance.now() - t0) / 1000
      const bytes = parts.reduce((s, p) => s + p.length, 0)
      const peak = peakRss()
      await net.stop()
      send({
        type: 'stats',
        seconds,
        bytes,
        peakRss: peak,
        idleRss,
        cpuSeconds: cpuSeconds() - cpuAtIdle,
        threads: threadCpu(),
      })
      return
    }
    default:
      throw new Error(`unknown mode ${mode}`)
  }
}

runMain(main)
