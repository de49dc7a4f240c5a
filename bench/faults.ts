/**
 * bench/faults: N transfers through a fault proxy that cuts every connection
 * at random intervals, against the same N transfers through the same proxy
 * without faults, in one run. Prints the success rate (target 100%, floor
 * 99%), total time with faults versus without, and the bytes the sender
 * served again as a share of the total.
 *
 *   npx node bench/faults.ts                           # 200 transfers of 8 MiB, 4 at a time
 *   HAUL_FAULTS_N=50 HAUL_FAULTS_MIB=32 npx node bench/faults.ts
 *   HAUL_FAULTS_CUT_MS=200,2000 ...                    # cut interval range, ms (default 50,500)
 *   HAUL_FAULTS_CONCURRENCY=8 ...                      # transfers at once (default 4)
 *   HAUL_FAULTS_WINDOW_MIB=8 ...                       # receiver fetch.windowBytes (default: the engine's)
 *
 * Sender and receiver are real engines in this process (one libp2p connection
 * through the proxy, Noise + yamux); every cut resets that TCP connection, so
 * it hits every transfer in flight at once.
 */
import { randomInt } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, type Engine, type FetchResult, HaulError } from '../src/index.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from '../src/loadtest/fault-proxy.ts'
import { sha256File } from '../test/support/files.ts'
import { startSender } from '../test/support/sender.ts'
import { servedBytes } from '../test/support/served.ts'
import { ensureRandomFile, MiB } from './lib/proc.ts'

const N = Number(process.env.HAUL_FAULTS_N ?? 200)
const SIZE = Math.round(Number(process.env.HAUL_FAULTS_MIB ?? 8) * MiB)
const CONCURRENCY = Number(process.env.HAUL_FAULTS_CONCURRENCY ?? 4)
const [CUT_MIN, CUT_MAX] = (process.env.HAUL_FAULTS_CUT_MS ?? '50,500').split(',').map(Number) as [
  number,
  number,
]
const WINDOW =
  process.env.HAUL_FAULTS_WINDOW_MIB === undefined
    ? undefined
    : Number(process.env.HAUL_FAULTS_WINDOW_MIB) * MiB
const RETRY = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 2000 }

interface RunStats {
  ok: number
  failed: Map<string, number>
  seconds: number
  served: number
  retries: number
  cuts: number
}

// The sender runs in this process: a crash there must be counted, not take the bench down with it.
const unhandled: unknown[] = []
process.on('unhandledRejection', (err) => {
  unhandled.push(err)
})

const dir = await mkdtemp(join(tmpdir(), 'haul-faults-'))
const src = join(dir, 'src.bin')
await ensureRandomFile(src, SIZE)
const srcHash = await sha256File(src)
const served = servedBytes()
const sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap: served.wrap })
const ticket = await sender.publish(src)

console.log(
  `bench/faults: ${N} transfers of ${(SIZE / MiB).toFixed(1)} MiB, ${CONCURRENCY} at a time, ` +
    `cuts every ${CUT_MIN}–${CUT_MAX} ms (TCP reset through a proxy); retry ${JSON.stringify(RETRY)}` +
    (WINDOW === undefined ? '' : `, window ${WINDOW / MiB} MiB`),
)

async function run(faults: boolean): Promise<RunStats> {
  const proxy = await FaultProxy.start({ target: { port: tcpPortOf(sender.network.addresses) } })
  const receiver: Engine = await createEngine({
    workers: 2,
    retry: RETRY,
    ...(WINDOW === undefined ? {} : { fetch: { windowBytes: WINDOW } }),
  })
  const t = proxyTicket(ticket, proxy)
  const stats: RunStats = { ok: 0, failed: new Map(), seconds: 0, served: 0, retries: 0, cuts: 0 }
  let stop = false
  const cutter = (async () => {
    while (faults && !stop) {
      await new Promise((r) => setTimeout(r, randomInt(CUT_MIN, CUT_MAX + 1)))
      if (!stop) stats.cuts += proxy.cutAll()
    }
  })()
  const servedBefore = served.bytes
  const started = performance.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < N) {
      const i = next++
      const dest = join(dir, `out-${faults ? 'f' : 'n'}-${i}.bin`)
      try {
        const r: FetchResult = await receiver.fetch(t, dest).result
        stats.retries += r.retries
        if ((await sha256File(dest)) === srcHash) stats.ok++
        else stats.failed.set('WRONG_BYTES', (stats.failed.get('WRONG_BYTES') ?? 0) + 1)
      } catch (err) {
        const code = err instanceof HaulError ? err.code : String(err)
        stats.failed.set(code, (stats.failed.get(code) ?? 0) + 1)
      } finally {
        await rm(dest, { force: true })
        await rm(`${dest}.part`, { force: true })
        await rm(`${dest}.part.journal`, { force: true })
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  stats.seconds = (performance.now() - started) / 1000
  stop = true
  await cutter
  stats.served = served.bytes - servedBefore
  await receiver.stop()
  await proxy.close()
  return stats
}

function report(name: string, s: RunStats): void {
  const total = N * SIZE
  const again = s.served - s.ok * SIZE
  const fails = [...s.failed].map(([k, v]) => `${k}×${v}`).join(', ') || 'none'
  console.log(
    `${name.padEnd(10)} success ${s.ok}/${N} (${((100 * s.ok) / N).toFixed(1)}%)  ` +
      `${s.seconds.toFixed(1)} s  ${(total / s.seconds / 1e6).toFixed(0)} MB/s  cuts ${s.cuts}  retries ${s.retries}  ` +
      `re-downloaded ${(again / MiB).toFixed(1)} MiB (${((100 * again) / total).toFixed(1)}% of ${(total / MiB).toFixed(0)} MiB)  failures: ${fails}`,
  )
}

try {
  const clean = await run(false)
  report('no faults', clean)
  const faulty = await run(true)
  report('faults', faulty)
  console.log(
    `time with faults / without: ${(faulty.seconds / clean.seconds).toFixed(2)}x; ` +
      `success rate ${((100 * faulty.ok) / N).toFixed(1)}% (target 100%, floor 99%)`,
  )
  if (unhandled.length > 0) {
    const first = unhandled[0] as Error
    console.log(
      `UNHANDLED REJECTIONS in this process (sender side): ${unhandled.length}; first: ${first?.stack?.split('\n').slice(0, 4).join(' | ')}`,
    )
  }
  if (faulty.ok < N || unhandled.length > 0) process.exitCode = 1
} finally {
  await sender.stop()
  await rm(dir, { recursive: true, force: true })
}
