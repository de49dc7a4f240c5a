import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../../src/index.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { type PeerProcess, spawnPeer } from '../support/children.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024
const SIZE = 64 * MiB + 5

/** A port that was free a moment ago: the restarted sender must come back on the same one. */
async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const { port } = s.address() as { port: number }
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

describe('restart the sending process mid-transfer (same identity, same port: the ticket still holds)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let receiver: Engine
  const children: PeerProcess[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-restart-'))
    src = join(dir, 'src.bin')
    await writeFile(src, SIZE, 'random')
    receiver = await createEngine({
      workers: 1,
      fetch: { windowBytes: 8 * MiB },
      retry: { maxAttempts: 12, baseDelayMs: 100, maxDelayMs: 1000 },
      timeouts: { idleMs: 3000, requestMs: 3000, connectMs: 3000 },
    })
  })
  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL')
    await receiver.stop()
    await cleanup()
  })

  const cases = [
    { signal: 'SIGKILL', listen: 'a fixed port' },
    { signal: 'SIGTERM', listen: 'a fixed port' },
    // The default: every interface, ports kept per family by the data folder alone.
    { signal: 'SIGKILL', listen: 'the default addresses' },
  ] as const
  for (const { signal, listen } of cases) {
    it(`sender on ${listen} stopped with ${signal} and started again: the receiver reconnects and completes`, async () => {
      const fixed = listen === 'a fixed port'
      const name = `${signal}-${fixed ? 'fixed' : 'default'}`
      const config = {
        mode: 'send',
        file: src,
        engine: {
          ...(fixed ? { listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`] } : {}),
          dataDir: join(dir, `sender-${name}`),
          workers: 1,
        },
      }
      const start = async () => {
        const c = spawnPeer(config)
        children.push(c)
        return { c, published: await c.waitFor((e) => e.event === 'published', 'published') }
      }
      const first = await start()
      const ticket = first.published.ticket as string
      const dest = join(dir, `out-${name}.bin`)
      const retries: RetryInfo[] = []
      let restarted: Promise<string> | undefined
      let lowest = Number.POSITIVE_INFINITY
      let afterRestart = Number.POSITIVE_INFINITY
      const handle = receiver.fetch(ticket, dest, {
        onRetry: (i) => retries.push(i),
        onProgress: (p) => {
          if (restarted !== undefined) lowest = Math.min(lowest, p.bytesDone)
          if (p.bytesDone >= SIZE / 4 && restarted === undefined) {
            afterRestart = p.bytesDone
            restarted = (async () => {
              first.c.proc.kill(signal)
              await first.c.exited
              const second = await start()
              return second.published.ticket as string
            })()
          }
        },
      })
      const r = await handle.result
      expect(restarted).toBeDefined()
      const secondTicket = await restarted!
      expect(secondTicket).toBe(ticket) // same identity, same address, same content id
      expect(await sha256File(dest)).toBe(await sha256File(src))
      expect(r.retries).toBeGreaterThanOrEqual(1)
      expect(retries.length).toBe(r.retries)
      // CONTENT_PREPARING: the restarted sender is indexing the file again (its data folder's
      // record of what the path published) when the receiver asks.
      for (const i of retries) {
        expect([
          'STREAM_CLOSED',
          'PEER_UNREACHABLE',
          'TIMEOUT',
          'CONTENT_NOT_FOUND',
          'CONTENT_PREPARING',
        ]).toContain(i.error.code)
      }
      // It continued where it was: progress never fell back below what was done before the restart.
      expect(lowest).toBeGreaterThanOrEqual(afterRestart)
    }, 120_000)
  }
})
