/**
 * bench/scale-probe: where a receiver's memory goes with many concurrent fetches.
 * The sender is a load-test engine process; the receiver runs in this process so
 * its memory can be split (V8 heap / external / array buffers) and its open
 * streams, budget and file descriptors counted while the fetches run.
 *
 *   npx node --max-semi-space-size=1 bench/scale-probe.ts                  # 1,000 x 1–16 MiB
 *   HAUL_PROBE_N=10000 HAUL_PROBE_MIN_KIB=64 HAUL_PROBE_MAX_KIB=1024 npx node --max-semi-space-size=1 bench/scale-probe.ts
 *   HAUL_PROBE_ENGINE='{"maxActiveTransfersPerPeer":8}' ...               # receiver engine options (JSON)
 *   HAUL_PROBE_SNAPSHOT=1 ...                                              # heap snapshot at the peak
 *
 * Reference, same run: the receiver's own idle figures before any fetch.
 */
import { fork } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import { createEngine, type EngineOptions } from '../dist/index.js'
import { PEER_SCRIPT } from '../dist/loadtest/index.js'
import type { FromPeer, ToPeer } from '../src/loadtest/peer.ts'
import { ENGINE_NODE_FLAGS } from '../src/process-flags.ts'
import { mulberry32, writeRandomFile } from '../src/util/random.ts'

const KiB = 1024
const MB = 1e6
const n = Number(process.env.HAUL_PROBE_N ?? 1000)
const minBytes = Number(process.env.HAUL_PROBE_MIN_KIB ?? 1024) * KiB
const maxBytes = Number(process.env.HAUL_PROBE_MAX_KIB ?? 16 * 1024) * KiB
const files = Number(process.env.HAUL_PROBE_FILES ?? 32)
const engineOpts = JSON.parse(process.env.HAUL_PROBE_ENGINE ?? '{}') as EngineOptions
const snapshot = process.env.HAUL_PROBE_SNAPSHOT === '1'

const work = await mkdtemp(join(tmpdir(), 'haul-probe-'))
await mkdir(join(work, 'out'))
const child = fork(PEER_SCRIPT, [], {
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  execArgv: [...ENGINE_NODE_FLAGS],
})
const next = <T extends FromPeer>(pred: (m: FromPeer) => boolean): Promise<T> =>
  new Promise((resolve) => {
    const on = (m: FromPeer): void => {
      if (!pred(m)) return
      child.off('message', on)
      resolve(m as T)
    }
    child.on('message', on)
  })
const send = (m: ToPeer): void => void child.send(m)

const status = (pid: number | 'self'): { rss: number; hwm: number } => {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

try {
  const ready = next((m) => m.type === 'ready')
  send({ type: 'init', engine: { workers: 1 }, tickMs: 1000 })
  await ready
  const random = mulberry32(1)
  const tickets: string[] = []
  const sizes: number[] = []
  for (let i = 0; i < files; i++) {
    const bytes = Math.round(minBytes + random() * (maxBytes - minBytes))
    const path = join(work, `f${i}.bin`)
    await writeRandomFile(path, bytes)
    const got = next<Extract<FromPeer, { type: 'published' }>>((m) => m.type === 'published' && m.id === i)
    send({ type: 'publish', id: i, path })
    tickets.push((await got).ticket)
    sizes.push(bytes)
  }
  const receiver = await createEngine({ workers: 1, ...engineOpts })
  ;(globalThis as { gc?: () => void }).gc?.()
  await new Promise((r) => setTimeout(r, 500))
  const idle = { ...process.memoryUsage(), sender: status(child.pid!).rss }
  console.log(
    `idle: receiver rss ${(idle.rss / MB).toFixed(0)} heap ${(idle.heapUsed / MB).toFixed(0)}/${(idle.heapTotal / MB).toFixed(0)} external ${(idle.external / MB).toFixed(0)} arrayBuffers ${(idle.arrayBuffers / MB).toFixed(0)} MB; sender rss ${(idle.sender / MB).toFixed(0)} MB`,
  )
  const t0 = performance.now()
  let done = 0
  let failed = 0
  let bytes = 0
  const errors: Record<string, number> = {}
  const all: Promise<void>[] = []
  for (let i = 0; i < n; i++) {
    const f = Math.floor(random() * files)
    const dest = join(work, 'out', `t${i}.bin`)
    const h = receiver.fetch(tickets[f]!, dest)
    all.push(
      h.result.then(
        async (r) => {
          done++
          bytes += r.bytes
          await rm(dest, { force: true })
        },
        (err: Error & { code?: string }) => {
          failed++
          errors[err.code ?? err.name] = (errors[err.code ?? err.name] ?? 0) + 1
        },
      ),
    )
  }
  const startedIn = performance.now() - t0
  const peak = {
    rss: 0,
    heapUsed: 0,
    heapTotal: 0,
    external: 0,
    arrayBuffers: 0,
    streams: 0,
    fds: 0,
    budget: 0,
  }
  let senderPeak = 0
  let snapped = false
  let liveAb = 0
  let liveHeap = 0
  const gc = (globalThis as { gc?: () => void }).gc
  let lastPrint = 0
  const sample = (): void => {
    const m = process.memoryUsage()
    const stats = receiver.stats()
    const s = {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      streams: stats.network.openStreams,
      fds: readdirSync('/proc/self/fd').length,
      budget: stats.memory.usedBytes,
    }
    senderPeak = Math.max(senderPeak, status(child.pid!).rss)
    if (gc !== undefined && process.env.HAUL_PROBE_GC === '1') {
      // Diagnosis only: what is live (not yet collected garbage) at this instant.
      gc()
      const after = process.memoryUsage()
      liveAb = Math.max(liveAb, after.arrayBuffers)
      liveHeap = Math.max(liveHeap, after.heapUsed)
    }
    for (const k of Object.keys(peak) as Array<keyof typeof peak>) peak[k] = Math.max(peak[k], s[k])
    if (snapshot && !snapped && s.rss >= peak.rss && performance.now() - t0 > 5000 && done > n / 4) {
      snapped = true
      console.log(
        `heap snapshot: ${writeHeapSnapshot(join(tmpdir(), `haul-probe-${Date.now()}.heapsnapshot`))}`,
      )
    }
    const t = (performance.now() - t0) / 1000
    if (t - lastPrint >= 5) {
      lastPrint = t
      console.log(
        `  ${t.toFixed(0)} s: ${done} done ${failed} failed, active ${stats.transfers.unfinished}; rss ${(s.rss / MB).toFixed(0)} heap ${(s.heapUsed / MB).toFixed(0)}/${(s.heapTotal / MB).toFixed(0)} ext ${(s.external / MB).toFixed(0)} ab ${(s.arrayBuffers / MB).toFixed(0)} MB; streams ${s.streams} fds ${s.fds} budget ${(s.budget / MB).toFixed(0)} MB`,
      )
    }
  }
  const timer = setInterval(sample, 100)
  await Promise.all(all)
  clearInterval(timer)
  sample()
  const seconds = (performance.now() - t0) / 1000
  const hwm = status('self').hwm
  console.log(
    `${n} x ${minBytes / KiB}–${maxBytes / KiB} KiB: ${done} ok ${failed} failed ${JSON.stringify(errors)} in ${seconds.toFixed(1)} s (fetch() calls took ${startedIn.toFixed(0)} ms), ${(bytes / seconds / MB).toFixed(1)} MB/s`,
  )
  console.log(
    `receiver peak: rss ${(peak.rss / MB).toFixed(0)} (+${((peak.rss - idle.rss) / MB).toFixed(0)}; VmHWM ${(hwm / MB).toFixed(0)}) heapUsed ${(peak.heapUsed / MB).toFixed(0)} (+${((peak.heapUsed - idle.heapUsed) / MB).toFixed(0)}) heapTotal ${(peak.heapTotal / MB).toFixed(0)} external ${(peak.external / MB).toFixed(0)} arrayBuffers ${(peak.arrayBuffers / MB).toFixed(0)} MB; streams ${peak.streams} fds ${peak.fds} budget ${(peak.budget / MB).toFixed(0)} MB`,
  )
  if (liveAb > 0)
    console.log(
      `live after gc(): arrayBuffers ${(liveAb / MB).toFixed(0)} MB, heapUsed ${(liveHeap / MB).toFixed(0)} MB`,
    )
  console.log(
    `sender peak rss ${(senderPeak / MB).toFixed(0)} (+${((senderPeak - idle.sender) / MB).toFixed(0)}) MB`,
  )
  await receiver.stop()
} finally {
  send({ type: 'exit' })
  await new Promise((r) => child.once('exit', r))
  await rm(work, { recursive: true, force: true })
}
