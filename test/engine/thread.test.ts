/**
 * `createEngine({ thread: 'worker' })` against the engine in the calling thread: real engines,
 * real transfers on loopback. What an embedder sees must be the same either way: results,
 * progress, cancellation and errors (class and code), and a stop that leaves nothing running.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { engineThread, type ThreadEngine } from '../../src/engine/thread/host.ts'
import {
  AbortedError,
  cidToString,
  createEngine,
  type EngineApi,
  type EngineOptions,
  HaulError,
  InternalError,
  InvalidArgumentError,
  type ServeEvent,
  SourceInvalidError,
  TicketInvalidError,
  type TransferHandle,
  type TransferProgress,
} from '../../src/index.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 6 * MiB + 123
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const base: EngineOptions = { listen: LOOPBACK, workers: 1, chunking: { kind: 'fixed', size: 256 * KiB } }

/** What a rejection or a throw was: its class, code and message. */
async function failure(run: () => unknown): Promise<{ error: unknown; name: string; code: unknown }> {
  try {
    await run()
  } catch (error) {
    return { error, name: (error as Error).constructor.name, code: (error as HaulError).code }
  }
  throw new Error('expected a failure')
}

describe("createEngine({ thread: 'worker' }) (real engines, loopback)", () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let sender: EngineApi
  let main: EngineApi
  let worker: EngineApi
  const engines: EngineApi[] = []

  const engine = async (o: EngineOptions = {}): Promise<EngineApi> => {
    const e = await createEngine({ ...base, ...o })
    engines.push(e)
    return e
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'f.src')
    await writeFile(src, SIZE, 'random')
    ;[sender, main, worker] = await Promise.all([engine(), engine(), engine({ thread: 'worker' })])
  })
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.stop()))
    await cleanup()
  })

  it('reports its own config, peer id and addresses', () => {
    expect(worker.config.thread).toBe('worker')
    expect(main.config.thread).toBe('main')
    expect(worker.config.chunking).toEqual(main.config.chunking)
    expect(worker.peerId).toMatch(/^12D3Koo/)
    expect(worker.addresses.length).toBeGreaterThan(0)
    expect(worker.addresses.every((a) => a.endsWith(`/p2p/${worker.peerId}`))).toBe(true)
  })

  it("haul's warnings raised in the engine thread reach the host's process, once, as in the calling thread", async () => {
    const odd = join(dir, 'we\\ird.bin')
    await writeFile(odd, 1000, 'random')
    for (const e of [main, worker]) {
      const warnings: Error[] = []
      const listen = (w: Error): number => warnings.push(w)
      process.on('warning', listen)
      try {
        await e.publish(odd)
        await eventually(() => warnings.some((w) => w.name === 'HaulWarning'), 'the warning')
      } finally {
        process.off('warning', listen)
      }
      const haul = warnings.filter((w) => w.name === 'HaulWarning')
      expect(haul).toHaveLength(1)
      expect(haul[0]!.message).toContain('we\\ird.bin')
    }
  })

  it('fetches what the calling thread fetches: the same bytes, the same result', async () => {
    const { ticket } = await sender.publish(src)
    const [a, b] = await Promise.all([
      main.fetch(ticket, join(dir, 'main.copy')).result,
      worker.fetch(ticket, join(dir, 'worker.copy')).result,
    ])
    const want = await sha256File(src)
    expect(await sha256File(join(dir, 'main.copy'))).toBe(want)
    expect(await sha256File(join(dir, 'worker.copy'))).toBe(want)
    expect({ bytes: b.bytes, chunks: b.chunks, resume: b.resume }).toEqual({
      bytes: a.bytes,
      chunks: a.chunks,
      resume: a.resume,
    })
    expect(worker.stats().transfers.unfinished).toBe(0)
  })

  it('publishes what the calling thread publishes (same content id), and serves it', async () => {
    const progress: number[] = []
    const events: ServeEvent[] = []
    const off = worker.onServe((e) => events.push(e))
    // A file of its own: one published before has its descriptor, and is not indexed again.
    const file = join(dir, 'g.src')
    await writeFile(file, SIZE, 'random', 2)
    const published = await worker.publish(file, { onProgress: (done) => progress.push(done) })
    const there = await main.publish(file)
    expect(published.index.cid).toEqual(there.index.cid)
    expect(progress.at(-1)).toBe(SIZE)
    expect(worker.stats().serving.contents).toBeGreaterThan(0)

    const dest = join(dir, 'from-worker.copy')
    await main.fetch(published.ticket, dest).result
    expect(await sha256File(dest)).toBe(await sha256File(file))
    const sent = () =>
      events
        .filter((e) => e.type === 'chunks-served')
        .reduce((n, e) => n + (e.type === 'chunks-served' ? e.bytes : 0), 0)
    await eventually(() => sent() === SIZE, 'serve events for every chunk')
    off()
  })

  it("calls onProgress on the caller's thread, and the handle reads the transfer's state", async () => {
    const { ticket } = await sender.publish(src)
    const seen: TransferProgress[] = []
    const h = worker.fetch(ticket, join(dir, 'progress.copy'), { onProgress: (p) => seen.push(p) })
    expect(h.status()).toBe('resolving')
    const r = await h.result
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.at(-1)).toMatchObject({ bytesDone: SIZE, totalBytes: SIZE })
    expect(h.status()).toBe('done')
    expect(h.progress()).toMatchObject({ bytesDone: SIZE, chunksDone: r.chunks })
  })

  it('a signal aborted part-way ends the fetch with ABORTED, an AbortedError, as in the calling thread', async () => {
    const { ticket } = await sender.publish(src)
    const cancelled = async (e: EngineApi, name: string) => {
      const stop = new AbortController()
      const h = e.fetch(ticket, join(dir, `${name}.cancelled`), {
        signal: stop.signal,
        maxBytesPerSec: 1 * MiB,
        onProgress: (p) => {
          if (p.bytesDone > 0) stop.abort()
        },
      })
      const f = await failure(() => h.result)
      return { ...f, status: h.status() }
    }
    const [a, b] = await Promise.all([cancelled(main, 'main'), cancelled(worker, 'worker')])
    expect(b.error).toBeInstanceOf(AbortedError)
    expect(b.error).toBeInstanceOf(HaulError)
    expect({ name: b.name, code: b.code, status: b.status }).toEqual({
      name: a.name,
      code: a.code,
      status: a.status,
    })
    expect(b.code).toBe('ABORTED')
  })

  it('cancel() and a signal aborted before the call end in ABORTED too', async () => {
    const { ticket } = await sender.publish(src)
    const h = worker.fetch(ticket, join(dir, 'cancel.copy'), { maxBytesPerSec: 1 * MiB })
    h.cancel()
    expect((await failure(() => h.result)).error).toBeInstanceOf(AbortedError)
    const early = await failure(
      () => worker.fetch(ticket, join(dir, 'early.copy'), { signal: AbortSignal.abort() }).result,
    )
    expect(early.error).toBeInstanceOf(AbortedError)
  })

  it('a fetch cancelled or failed before anyone awaits its result is no unhandled rejection, as in the calling thread', async () => {
    const { ticket } = await sender.publish(src)
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason)
    }
    process.on('unhandledRejection', onUnhandled)
    try {
      for (const e of [main, worker]) {
        // Watched through its status only (an embedder polling it, or showing onProgress).
        const cancelled = e.fetch(ticket, join(dir, `unawaited-${e.config.thread}.copy`), {
          maxBytesPerSec: 1 * MiB,
        })
        cancelled.cancel()
        await eventually(() => cancelled.status() === 'cancelled', `${e.config.thread}: cancelled`)
        // A destination that is a folder: failed at once, nothing awaited it either.
        const failed = e.fetch(ticket, dir)
        await eventually(() => failed.status() === 'failed', `${e.config.thread}: failed`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('bad input fails with the class and code the calling thread gives', async () => {
    const cases: [string, (e: EngineApi) => unknown][] = [
      ['a ticket that does not decode (thrown by fetch)', (e) => e.fetch('not a ticket', join(dir, 'x'))],
      ['a file that is not there', (e) => e.publish(join(dir, 'missing'))],
      [
        'a collection fetch of a file ticket',
        async (e) => e.fetchCollection((await sender.publish(src)).ticket, dir),
      ],
    ]
    const want = [TicketInvalidError, SourceInvalidError, InvalidArgumentError]
    for (const [i, [what, run]] of cases.entries()) {
      const a = await failure(() => run(main))
      const b = await failure(() => run(worker))
      expect({ name: b.name, code: b.code }, what).toEqual({ name: a.name, code: a.code })
      expect(b.error, what).toBeInstanceOf(want[i]!)
      expect((b.error as Error).message, what).toBe((a.error as Error).message)
    }
    // fetch() throws at once, as it does in the calling thread.
    expect(() => worker.fetch('not a ticket', join(dir, 'y'))).toThrow(TicketInvalidError)
  })

  it('a ticket naming only this engine throws from fetch() (INVALID_ARGUMENT), as in the calling thread', async () => {
    const thrown: Record<string, unknown> = {}
    for (const e of [main, worker]) {
      const { ticket } = await e.publish(src)
      const mode = e.config.thread
      let handle: TransferHandle | undefined
      try {
        handle = e.fetch(ticket, join(dir, `self-${mode}.copy`))
      } catch (err) {
        thrown[mode] = err
      }
      // Not a handle whose result rejects: nothing was started.
      expect(handle, mode).toBeUndefined()
      expect(thrown[mode], mode).toBeInstanceOf(InvalidArgumentError)
      // Another provider given beside it: the fetch starts (and is cancelled here).
      const other = { peerId: sender.peerId, addrs: sender.addresses }
      const started = e.fetch(ticket, join(dir, `self-other-${mode}.copy`), { providers: [other] })
      started.cancel()
      await started.result.catch(() => {})
    }
    expect((thrown.worker as Error).message).toBe((thrown.main as Error).message)
  })

  it('what needs the DHT on an engine without it throws from fetch() (INVALID_ARGUMENT), as in the calling thread: a content id alone, and provide', async () => {
    const { ticket, index } = await sender.publish(src)
    for (const [what, call] of [
      [
        'a content id alone',
        (e: EngineApi) => e.fetch(cidToString(index.cid), join(dir, `cid-${e.config.thread}.copy`)),
      ],
      [
        'provide',
        (e: EngineApi) => e.fetch(ticket, join(dir, `provide-${e.config.thread}.copy`), { provide: true }),
      ],
    ] as const) {
      const thrown: Record<string, unknown> = {}
      for (const e of [main, worker]) {
        const mode = e.config.thread
        let handle: TransferHandle | undefined
        try {
          handle = call(e)
        } catch (err) {
          thrown[mode] = err
        }
        expect(handle, `${what}, ${mode}`).toBeUndefined()
        expect(thrown[mode], `${what}, ${mode}`).toBeInstanceOf(InvalidArgumentError)
      }
      expect((thrown.worker as Error).message).toBe((thrown.main as Error).message)
    }
  })

  it('publishes and fetches a folder, onFile called here for each file', async () => {
    const folder = join(dir, 'folder')
    await mkdir(join(folder, 'sub'), { recursive: true })
    await writeFile(join(folder, 'a.bin'), 300 * KiB, 'random', 3)
    await writeFile(join(folder, 'sub', 'b.bin'), 700 * KiB, 'random', 4)
    // Served by the worker's engine, fetched by the calling thread's; and the other way round.
    const { ticket, index } = await worker.publishCollection(folder)
    expect(index).toMatchObject({ files: 2, bytes: 1000 * KiB })
    const there = await main.fetchCollection(ticket, join(dir, 'folder-main'))
    const placed: string[] = []
    const fromSender = (await sender.publishCollection(folder)).ticket
    const r = await worker.fetchCollection(fromSender, join(dir, 'folder-worker'), {
      onFile: (f) => placed.push(f.path),
    })
    expect(r).toMatchObject({ files: 2, bytes: 1000 * KiB })
    expect(there).toMatchObject({ files: 2, bytes: 1000 * KiB })
    expect(placed.sort()).toEqual(['a.bin', 'sub/b.bin'])
    const want = await sha256File(join(folder, 'sub', 'b.bin'))
    expect(await sha256File(join(r.path, 'sub', 'b.bin'))).toBe(want)
    expect(await sha256File(join(there.path, 'sub', 'b.bin'))).toBe(want)
  })

  it('stop() ends the thread: later calls fail with ABORTED', async () => {
    const e = await engine({ thread: 'worker' })
    const thread = engineThread(e as ThreadEngine)
    const exited = new Promise((resolve) => thread.once('exit', resolve))
    await e.stop()
    await exited
    expect(() => e.fetch('x', join(dir, 'z'))).toThrow(AbortedError)
    expect(e.stats().transfers.unfinished).toBe(0)
  })

  it('a thread that dies rejects the calls it leaves pending with InternalError, and every later call', async () => {
    const e = await engine({ thread: 'worker' })
    const { ticket } = await sender.publish(src)
    const h = e.fetch(ticket, join(dir, 'crash.copy'), { maxBytesPerSec: 1 * MiB })
    await eventually(() => (h.progress()?.bytesDone ?? 0) > 0, 'the fetch running')
    await engineThread(e as ThreadEngine).terminate()
    const f = await failure(() => h.result)
    expect(f.error).toBeInstanceOf(InternalError)
    expect(f.code).toBe('INTERNAL')
    // A promise method rejects (never throws), as in the host thread's mode.
    await expect(e.publish(src)).rejects.toThrow(InternalError)
  })
})
