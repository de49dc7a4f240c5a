import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../../src/index.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { FaultProxy, proxyTicket, randomInt, tcpPortOf } from '../support/fault-proxy.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { startSender } from '../support/sender.ts'
import { servedBytes } from '../support/served.ts'

const MiB = 1024 * 1024
const WINDOW = 4 * MiB

describe('a long transfer with its connection cut every 1–3 s', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Awaited<ReturnType<typeof startSender>>
  let receiver: Engine
  let proxy: FaultProxy
  const served = servedBytes()

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-cuts-'))
    sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap: served.wrap })
    // 6 MiB/s: about 8 s of transfer, so a cut every 1–3 s hits it several times.
    proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      rateBytesPerSec: 6 * MiB,
    })
    receiver = await createEngine({
      workers: 1,
      fetch: { windowBytes: WINDOW },
      retry: { maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 1000 },
    })
  })
  afterAll(async () => {
    await receiver.stop()
    await proxy.close()
    await sender.stop()
    await cleanup()
  })

  for (const [mode, size] of [
    ['reset', 48 * MiB + 17],
    ['close', 24 * MiB + 9],
  ] as const) {
    it(`cuts as TCP ${mode === 'reset' ? 'resets' : 'FINs'}: completes verified, each cut costs at most the window`, async () => {
      const src = join(dir, `src-${mode}.bin`)
      await writeFile(src, size, 'random')
      const ticket = proxyTicket(await sender.publish(src), proxy)
      const dest = join(dir, `out-${mode}.bin`)
      let cuts = 0
      let stop = false
      const cutter = (async () => {
        while (!stop) {
          await new Promise((r) => setTimeout(r, randomInt(1000, 3000)))
          if (stop) break
          cuts += proxy.cutAll(mode)
        }
      })()
      const retries: RetryInfo[] = []
      const before = served.bytes
      try {
        const r = await receiver.fetch(ticket, dest, { onRetry: (i) => retries.push(i) }).result
        expect(await sha256File(dest)).toBe(await sha256File(src))
        expect(r.retries).toBe(retries.length)
      } finally {
        stop = true
        await cutter
      }
      expect(cuts).toBeGreaterThanOrEqual(mode === 'reset' ? 3 : 1)
      expect(retries.length).toBeGreaterThanOrEqual(1)
      const redownloaded = served.bytes - before - size
      expect(redownloaded).toBeLessThanOrEqual(retries.length * WINDOW)
      console.info(
        `cut every 1–3 s (${mode}): ${cuts} cuts, ${retries.length} retries, re-downloaded ${(redownloaded / MiB).toFixed(1)} MiB of ${(size / MiB).toFixed(0)} MiB`,
      )
    }, 120_000)
  }
})
