/**
 * One engine process of a load test (forked with IPC by run.ts; runs from
 * dist/ like any embedder, through the public API only). It publishes the
 * files it is told to, fetches what it is told to (deleting each download
 * once verified, so a long run does not fill the disk), and reports the bytes
 * it has received every `tickMs`.
 */
import { createHash } from 'node:crypto'
import { appendFileSync, createReadStream } from 'node:fs'
import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { createEngine, type EngineOptions, isHaulError } from '../index.ts'
import { CONTENT_MISMATCH } from './options.ts'

export type ToPeer =
  | { type: 'init'; engine: EngineOptions; tickMs: number }
  | { type: 'publish'; id: number; path: string }
  /** `sha256`: the generated file's hash (hex), to check the download against (`checkDownloads`). */
  | { type: 'fetch'; id: number; ticket: string; dest: string; sha256?: string }
  | { type: 'cancel-all' }
  | { type: 'exit' }

/**
 * One finished fetch. `at`: when the engine settled it, in ms of the wall clock
 * (`performance.timeOrigin + now()`), before the content check and the unlink.
 * `cancelled`: the harness cancelled it (cancel-all) and it ended ABORTED.
 */
export interface FetchDone {
  id: number
  ok: boolean
  cancelled?: boolean
  bytes: number
  retries: number
  error?: string
  at: number
}

export type FromPeer =
  /** `metrics`: where its Prometheus endpoint listens (`host:port`), when the engine has one. */
  | { type: 'ready'; peerId: string; metrics?: string }
  | { type: 'published'; id: number; ticket: string }
  | { type: 'done'; results: FetchDone[] }
  | { type: 'tick'; bytesDone: number; active: number }
  | { type: 'fatal'; error: string }

/** Once the harness has gone (it was killed, or gave up on this process), there is nobody to tell. */
const send = (m: FromPeer): void => {
  if (process.connected) process.send?.(m)
}

async function main(): Promise<void> {
  const init = await new Promise<Extract<ToPeer, { type: 'init' }>>((resolve) =>
    process.once('message', (m: ToPeer) => m.type === 'init' && resolve(m)),
  )
  // The harness runs every process on this machine: loopback, unless its options say otherwise.
  const engine = await createEngine({ listen: ['/ip4/127.0.0.1/tcp/0'], ...init.engine })
  // Diagnosis: HAUL_LOADTEST_MEMLOG=<dir> appends process.memoryUsage(), budget and recycler figures each tick.
  const memDir = process.env.HAUL_LOADTEST_MEMLOG
  const memLog = memDir === undefined ? undefined : join(memDir, `peer-${process.pid}.jsonl`)
  // Per tick: GCs by kind, and arrayBuffers right after them (what they left live).
  const gcs = { minor: 0, major: 0, abAfterMajor: 0, abAfterMinor: 0 }
  if (memLog !== undefined) {
    new PerformanceObserver((list) => {
      const ab = process.memoryUsage().arrayBuffers
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
          gcs.major++
          gcs.abAfterMajor = Math.max(gcs.abAfterMajor, ab)
        } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
          gcs.minor++
          gcs.abAfterMinor = Math.max(gcs.abAfterMinor, ab)
        }
      }
    }).observe({ entryTypes: ['gc'] })
  }
  // Fetches finished in one turn of the event loop go to the parent as one message: each message
  // is a JSON encoding and a pipe write (~2 % of the receiver's main thread at 10,000 transfers;
  // 2.6 fetches a message there).
  let finished: FetchDone[] = []
  const flushDone = (): void => {
    const results = finished
    finished = []
    send({ type: 'done', results })
  }
  const reportDone = (d: FetchDone): void => {
    if (finished.length === 0) setImmediate(flushDone)
    finished.push(d)
  }
  const active = new Map<number, { cancel(): void; done: () => number; cancelled: boolean }>()
  let finishedBytes = 0
  const tick = setInterval(() => {
    let bytes = finishedBytes
    for (const a of active.values()) bytes += a.done()
    send({ type: 'tick', bytesDone: bytes, active: active.size })
    if (memLog !== undefined) {
      const m = process.memoryUsage()
      const { memory, network } = engine.stats()
      const line = {
        t: Date.now(),
        ...m,
        budget: memory.usedBytes,
        idle: memory.buffers.idleBytes,
        hits: memory.buffers.hits,
        misses: memory.buffers.misses,
        streams: network.openStreams,
        ...gcs,
      }
      appendFileSync(memLog, `${JSON.stringify(line)}\n`)
      gcs.abAfterMajor = 0
      gcs.abAfterMinor = 0
    }
  }, init.tickMs)
  let exiting: (() => void) | undefined
  const exited = new Promise<void>((r) => (exiting = r))
  // The harness went away without saying exit: stop like an exit, not with an IPC error.
  process.once('disconnect', () => exiting?.())
  process.on('message', (m: ToPeer) => {
    switch (m.type) {
      case 'publish':
        engine.publish(m.path).then(
          (p) => send({ type: 'published', id: m.id, ticket: p.ticket }),
          (err: unknown) => send({ type: 'fatal', error: describe(err) }),
        )
        return
      case 'fetch': {
        // Counted here rather than taken from the result: a failed fetch has no result to ask.
        let retries = 0
        const handle = engine.fetch(m.ticket, m.dest, { onRetry: () => void retries++ })
        const entry = {
          cancel: () => {
            entry.cancelled = true
            handle.cancel()
          },
          done: () => handle.progress()?.bytesDone ?? 0,
          cancelled: false,
        }
        active.set(m.id, entry)
        handle.result.then(
          async (r) => {
            const at = performance.timeOrigin + performance.now()
            active.delete(m.id)
            finishedBytes += r.bytes
            const error =
              m.sha256 === undefined
                ? undefined
                : await sha256Of(m.dest).then(
                    (h) => (h === m.sha256 ? undefined : CONTENT_MISMATCH),
                    (err: unknown) => describe(err),
                  )
            await removeFile(m.dest)
            reportDone({
              id: m.id,
              ok: error === undefined,
              bytes: r.bytes,
              retries,
              at,
              ...(error === undefined ? {} : { error }),
            })
          },
          async (err: unknown) => {
            const at = performance.timeOrigin + performance.now()
            const bytes = handle.progress()?.bytesDone ?? 0
            active.delete(m.id)
            finishedBytes += bytes
            await removeFile(m.dest)
            await removeFile(`${m.dest}.part`)
            await removeFile(`${m.dest}.part.journal`)
            const error = describe(err)
            // Only the ABORTED the harness asked for is a cancellation; anything else failed on its own.
            if (entry.cancelled && error === 'ABORTED')
              reportDone({ id: m.id, ok: false, cancelled: true, bytes, retries, at })
            else reportDone({ id: m.id, ok: false, bytes, retries, error, at })
          },
        )
        return
      }
      case 'cancel-all':
        for (const a of active.values()) a.cancel()
        return
      case 'exit':
        exiting?.()
        return
    }
  })
  const metrics = engine.metricsAddress
  send({ type: 'ready', peerId: engine.peerId, ...(metrics === undefined ? {} : { metrics }) })
  await exited
  clearInterval(tick)
  await engine.stop()
}

/**
 * Deletes a file the run made, if it is there. One unlink: `rm({ force: true })` adds an lstat
 * and its rimraf machinery, ~3 % of the receiver's main thread at 10,000 transfers.
 */
async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
  })
}

/** SHA-256 of a file, hex, streamed (a download may be larger than the memory budget). */
async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const b of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(b as Buffer)
  return hash.digest('hex')
}

function describe(err: unknown): string {
  if (isHaulError(err)) return err.code
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ type: 'fatal', error: describe(err) })
    process.exit(1)
  },
)
