import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FetchOptions, TransferHandle } from '../../src/engine/api-types.ts'
import { Engine } from '../../src/engine/engine.ts'
import { AbortedError } from '../../src/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { type FakeSender, repeatChunk, startFakeSender } from './support/receiver-sender.ts'

const KiB = 1024
const CHUNK = 64 * KiB
const chunking = { kind: 'fixed', size: CHUNK } as const
const CHUNKS = 16
/** Generous bounds on a machine shared by other test runs; the old code never ended at all. */
const CANCEL_MS = 3_000
const STOP_MS = 5_000

function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (cond()) {
        clearInterval(t)
        resolve()
      } else if (performance.now() - t0 > ms) {
        clearInterval(t)
        reject(new Error(`timed out waiting for ${what}`))
      }
    }, 20)
  })
}

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now()
  const value = await p
  return { value, ms: performance.now() - t0 }
}

/**
 * A sender that serves a few chunks, then answers every request with one chunk re-sent every
 * 300 ms forever and never closes its side of a stream: the receiver's request timer is the
 * default 30 s, so only cancellation can end the fetch, and it must not wait on this peer.
 */
describe('cancel and engine.stop() while a peer trickles repeats', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let digest: string
  let sender: FakeSender

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-recv-cancel-'))
    src = join(dir, 'src.bin')
    await writeFile(src, CHUNKS * CHUNK, 'random')
    digest = await sha256File(src)
    sender = await startFakeSender(src, repeatChunk(300, 2), { chunking })
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  /** Small requests, so the first (honest) one leaves most of the file to the trickle. */
  const receiverOptions = {
    workers: 1,
    chunking,
    fetch: { chunksPerRequest: 2, windowBytes: 4 * CHUNK },
    // A journal even for a file this small: the test checks what it vouches for.
    journal: { minBytes: 0 },
  }

  /** Starts a fetch and waits until chunks were written and the trickle is under way. */
  async function stalledFetch(
    engine: Engine,
    dest: string,
    opts: FetchOptions = {},
  ): Promise<{ handle: TransferHandle; result: Promise<unknown> }> {
    const framesBefore = sender.framesSent
    const handle = engine.fetch(sender.ticket, dest, opts)
    // Settled either way, so an early failure shows in the assertions rather than as unhandled.
    const result = handle.result.catch((e: unknown) => e)
    await until(() => (handle.progress()?.chunksDone ?? 0) >= 2, 'the honest chunks')
    await until(() => sender.framesSent >= framesBefore + 12, 'repeated frames')
    expect(handle.status()).toBe('fetching')
    return { handle, result }
  }

  it('handle.cancel(): ABORTED promptly, engine.stop() promptly, and the part file resumes', async () => {
    const dest = join(dir, 'cancel.out')
    const engine = await Engine.create(receiverOptions)
    let stopped = false
    try {
      const { handle, result } = await stalledFetch(engine, dest)
      handle.cancel()
      const { value: err, ms } = await timed(result)
      expect(err).toBeInstanceOf(AbortedError)
      expect(ms).toBeLessThan(CANCEL_MS)
      expect(handle.status()).toBe('cancelled')
      expect(engine.stats().memory.workBytes).toBe(0)
      // Its stream is closed, not reset: a peer that goes on sending holds it timeouts.closeMs at most.
      await expect.poll(() => engine.stats().network.openStreams, { timeout: 4000 }).toBe(0)
      const stop = await timed(engine.stop())
      stopped = true
      expect(stop.ms).toBeLessThan(STOP_MS)
    } finally {
      if (!stopped) await engine.stop()
    }
    expect(existsSync(dest)).toBe(false)
    expect(existsSync(`${dest}.part`)).toBe(true)
    expect(existsSync(`${dest}.part.journal`)).toBe(true)
    // Consistent: an honest sender's fetch keeps what the journal vouches for and completes.
    const honest = await Engine.create({ workers: 1, chunking })
    const receiver = await Engine.create({ workers: 1, chunking, journal: { minBytes: 0 } })
    try {
      const { ticket } = await honest.publish(src)
      const r = await receiver.fetch(ticket, dest).result
      expect(r.resume.mode).toBe('journal')
      expect(r.resume.chunksKept).toBeGreaterThanOrEqual(2)
      expect(await sha256File(dest)).toBe(digest)
    } finally {
      await Promise.all([honest.stop(), receiver.stop()])
    }
  })

  it('engine.stop() without a cancel: resolves promptly, the fetch ends ABORTED', async () => {
    const engine = await Engine.create(receiverOptions)
    const { result } = await stalledFetch(engine, join(dir, 'stop.out'))
    const stop = await timed(engine.stop())
    expect(stop.ms).toBeLessThan(STOP_MS)
    expect(await result).toBeInstanceOf(AbortedError)
  })

  it('the fetch’s AbortSignal, on the multi-peer path: ABORTED promptly, engine.stop() promptly', async () => {
    const engine = await Engine.create(receiverOptions)
    let stopped = false
    try {
      const ac = new AbortController()
      const { handle, result } = await stalledFetch(engine, join(dir, 'swarm.out'), {
        swarm: true,
        signal: ac.signal,
      })
      ac.abort()
      const { value: err, ms } = await timed(result)
      expect(err).toBeInstanceOf(AbortedError)
      expect(ms).toBeLessThan(CANCEL_MS)
      expect(handle.status()).toBe('cancelled')
      const stop = await timed(engine.stop())
      stopped = true
      expect(stop.ms).toBeLessThan(STOP_MS)
    } finally {
      if (!stopped) await engine.stop()
    }
  })

  it('haul get (a real process) exits on SIGINT within a bound', async () => {
    const bin = new URL('../../bin/haul.js', import.meta.url).pathname
    const dest = join(dir, 'cli.out')
    const child = spawn(process.execPath, [bin, 'get', sender.ticket, '-o', dest, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const events: Array<Record<string, unknown>> = []
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        events.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        // not an event
      }
    })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const streamsBefore = sender.streams
      const framesBefore = sender.framesSent
      // Its stream is open and the repeats flow (progress events are throttled: the one chunk
      // it gets may arrive too soon after the first event to be reported).
      await until(() => sender.streams > streamsBefore, 'haul get to connect').catch((err: Error) => {
        throw new Error(`${err.message}; events: ${JSON.stringify(events)}; stderr: ${stderr}`)
      })
      await until(() => sender.framesSent >= framesBefore + 12, 'repeated frames')
      expect(events.some((e) => e.event === 'progress')).toBe(true)
      const t0 = performance.now()
      child.kill('SIGINT')
      const code = await exited
      expect(performance.now() - t0).toBeLessThan(STOP_MS + 2_000) // + process exit
      expect(code).toBe(130)
      expect(events.at(-1)).toMatchObject({ event: 'interrupted', path: dest })
      expect(existsSync(`${dest}.part`)).toBe(true)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })
})
