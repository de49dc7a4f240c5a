/**
 * bench/event-loop: how long the host's event loop is held up while a large file arrives, with
 * the receiving engine in the host's thread (`thread: 'main'`) against a worker thread of its own
 * (`thread: 'worker'`), and the goodput of each. The sender is another process
 * (bench/transfer-peer.ts) on 127.0.0.1, so the host's loop carries only the receiver.
 *
 *   npx node bench/event-loop.ts                  # 1 GiB of random bytes, 2 rounds (main, worker, main, worker)
 *   HAUL_BENCH_GIB=4 npx node bench/event-loop.ts # 4 GiB
 *   HAUL_BENCH_ROUNDS=1 ... / HAUL_BENCH_MIB=256 ...
 *
 * The delay is from `perf_hooks.monitorEventLoopDelay`, from the fetch's start to its result:
 * it records the interval between firings of a timer due every RESOLUTION_MS, so the figures
 * here are that interval less RESOLUTION_MS, how late the timer fired. The host runs with Node's default flags, as an
 * embedder's process would. Target (issue 23): p99 ≤ 10 ms with `thread: 'worker'`.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createEngine, type EngineThread } from '../src/index.ts'
import { ENGINE_NODE_FLAGS } from '../src/process-flags.ts'
import { ensureRandomFile, MB, sizeFromEnv } from './lib/proc.ts'

const size = sizeFromEnv(1)
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 2)
const file = process.env.HAUL_BENCH_FILE ?? join(tmpdir(), `haul-bench-${size}.bin`)
const dest = join(tmpdir(), `haul-bench-event-loop-${process.pid}.out`)
const peer = new URL('./transfer-peer.ts', import.meta.url).pathname
const RESOLUTION_MS = 5

interface Run {
  thread: EngineThread
  mbps: number
  p50: number
  p99: number
  max: number
}

function next<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { type: string }) => {
      if (m.type !== type) return
      child.off('message', onMsg)
      resolve(m as T)
    }
    child.on('message', onMsg)
    child.once('exit', (code) => reject(new Error(`the sender exited ${code} before '${type}'`)))
  })
}

/** One fetch of the whole file by a fresh receiving engine in `thread`. */
async function fetchOnce(ticket: string, thread: EngineThread): Promise<Run> {
  const receiver = await createEngine({ thread, listen: ['/ip4/127.0.0.1/tcp/0'], workers: 2 })
  try {
    const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
    const t0 = performance.now()
    delay.enable()
    const r = await receiver.fetch(ticket, dest).result
    delay.disable()
    const seconds = (performance.now() - t0) / 1000
    if (r.bytes !== size) throw new Error(`fetched ${r.bytes} bytes of ${size}`)
    const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)
    return {
      thread,
      mbps: size / MB / seconds,
      p50: ms(delay.percentile(50)),
      p99: ms(delay.percentile(99)),
      max: ms(delay.max),
    }
  } finally {
    await receiver.stop()
    await rm(dest, { force: true })
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!

await ensureRandomFile(file, size)
const sender = fork(peer, ['send', file], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  execArgv: [...ENGINE_NODE_FLAGS],
})
try {
  const { ticket } = await next<{ ticket: string }>(sender, 'ready')
  const runs: Run[] = []
  for (let i = 0; i < rounds; i++) {
    for (const thread of ['main', 'worker'] as const) {
      const run = await fetchOnce(ticket, thread)
      runs.push(run)
      console.log(
        `round ${i + 1} ${thread.padEnd(6)} ${run.mbps.toFixed(0)} MB/s, event-loop delay p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms, max ${run.max.toFixed(1)} ms`,
      )
    }
  }
  const of = (t: EngineThread) => runs.filter((r) => r.thread === t)
  const summary = (t: EngineThread) => ({
    mbps: median(of(t).map((r) => r.mbps)),
    p99: median(of(t).map((r) => r.p99)),
    max: Math.max(...of(t).map((r) => r.max)),
  })
  const main = summary('main')
  const worker = summary('worker')
  console.log(`\n${(size / 2 ** 30).toFixed(2)} GiB, ${rounds} round(s), medians:`)
  console.log('| thread | goodput MB/s | event-loop p99 ms | worst delay ms |')
  console.log('|---|---|---|---|')
  for (const [t, s] of [
    ['main', main],
    ['worker', worker],
  ] as const)
    console.log(`| ${t} | ${s.mbps.toFixed(0)} | ${s.p99.toFixed(1)} | ${s.max.toFixed(1)} |`)
  console.log(
    `worker / main: p99 ${(worker.p99 / main.p99).toFixed(2)}x, goodput ${(worker.mbps / main.mbps).toFixed(2)}x; target p99 ≤ 10 ms: ${worker.p99 <= 10 ? 'met' : 'missed'}`,
  )
  console.log(JSON.stringify({ size, rounds, main, worker }))
} finally {
  sender.send({ type: 'exit' })
  await next(sender, 'stats').catch(() => {})
  sender.disconnect()
}
