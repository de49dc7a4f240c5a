import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkVerificationError, ConfigInvalidError } from '../../src/errors.ts'
import { createEngine, type Engine, type TransferProgress } from '../../src/index.ts'
import { PEER_SERIES } from '../../src/metrics/peer-counters.ts'
import { FaultProxy, proxyTicket, randomInt, tcpPortOf } from '../support/fault-proxy.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { get, type Scrape, samples, scrape, value } from '../support/metrics.ts'
import { corrupting, startSender } from '../support/sender.ts'
import { sleep } from '../support/wait.ts'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 4 * MiB + 123
const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

describe('the metrics endpoint over real HTTP', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine
  let src: string
  let ticket: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const opts = { workers: 1, listen: LOOPBACK, metrics: { listen: '127.0.0.1:0' } }
    sender = await createEngine({ ...opts, chunking: { kind: 'fixed', size: 64 * KiB } })
    receiver = await createEngine(opts)
    src = join(dir, 'f.src')
    await writeFile(src, SIZE, 'random')
    ticket = (await sender.publish(src)).ticket
  })
  afterAll(async () => {
    await Promise.all([sender?.stop(), receiver?.stop()])
    await cleanup()
  })

  it('each engine says where it listens; an engine without the option has none', async () => {
    expect(sender.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(receiver.metricsAddress).not.toBe(sender.metricsAddress)
    const plain = await createEngine({ workers: 1, listen: LOOPBACK })
    expect(plain.metricsAddress).toBeUndefined()
    await plain.stop()
  })

  it('during a transfer and after it, the counters agree with the transfer’s own result', async () => {
    let during: Promise<Scrape> | undefined
    let seenThen: TransferProgress | undefined
    // Limited to 1 MiB/s, the fetch runs for about 4 s: the scrape started at its first progress
    // report is answered while it is still fetching.
    const h = receiver.fetch(ticket, join(dir, 'out'), {
      maxBytesPerSec: MiB,
      onProgress: (p) => {
        if (during !== undefined || p.bytesDone === 0) return
        seenThen = p
        during = scrape(receiver.metricsAddress!)
      },
    })
    const result = await h.result
    expect(during).toBeDefined()
    const mid = await during!
    const midBytes = value(mid, 'haul_received_bytes_total')!
    expect(midBytes).toBeGreaterThanOrEqual(seenThen!.bytesDone - seenThen!.keptBytes)
    expect(midBytes).toBeLessThan(SIZE)
    expect(value(mid, 'haul_transfers', { state: 'fetching' })).toBe(1)
    expect(value(mid, 'haul_transfers_active')).toBe(1)
    expect(value(mid, 'haul_transfers_total', { outcome: 'done' })).toBeUndefined()

    const after = await scrape(receiver.metricsAddress!)
    expect(value(after, 'haul_received_bytes_total')).toBe(result.bytes - result.resume.bytesKept)
    expect(value(after, 'haul_kept_bytes_total')).toBe(result.resume.bytesKept)
    expect(value(after, 'haul_transfers_total', { outcome: 'done' })).toBe(1)
    expect(value(after, 'haul_transfers', { state: 'fetching' })).toBe(0)
    expect(value(after, 'haul_transfers_active')).toBe(0)
    expect(value(after, 'haul_chunks_verification_failed_total')).toBe(result.swarm?.corruptChunks ?? 0)
    expect(value(after, 'haul_peer_received_bytes_total', { peer: sender.peerId })).toBe(result.bytes)
    expect(value(after, 'haul_peer_received_bytes_total', { peer: 'other' })).toBe(0)
    expect(samples(after, 'haul_transfer_retries_total')).toEqual([])
    expect(value(after, 'haul_memory_budget_bytes')).toBe(receiver.stats().memory.limitBytes)
    expect((await stat(join(dir, 'out'))).size).toBe(SIZE)

    // The sender reports chunks served at most every 500 ms per session: it catches up.
    let sent = await scrape(sender.metricsAddress!)
    for (let i = 0; i < 200 && (value(sent, 'haul_sent_bytes_total') ?? 0) < SIZE; i++) {
      await sleep(50)
      sent = await scrape(sender.metricsAddress!)
    }
    expect(value(sent, 'haul_sent_bytes_total')).toBe(SIZE)
    expect(value(sent, 'haul_sent_chunks_total')).toBe(result.chunks)
    expect(value(sent, 'haul_peer_sent_bytes_total', { peer: receiver.peerId })).toBe(SIZE)
    expect(value(sent, 'haul_serve_contents')).toBe(1)
    expect(value(sent, 'haul_serve_sessions_opened_total')).toBeGreaterThanOrEqual(1)
    // One receiving peer, at the step the sender's `auto` codec chose for it.
    const steps = samples(sent, 'haul_serve_codec_peers')
    expect(steps.map(([k]) => k).sort()).toEqual(
      ['none', 'zstd-1', 'zstd-3', 'zstd-9'].map((step) => `haul_serve_codec_peers{step="${step}"}`),
    )
    expect(steps.reduce((n, [, v]) => n + v, 0)).toBe(1)
    expect(Object.values(sender.stats().serving.codecSteps).reduce((n, v) => n + v, 0)).toBe(1)
  })

  it('a failed fetch counts by its error code', async () => {
    // The destination holds other data: DESTINATION_EXISTS once the header is read.
    const dest = join(dir, 'taken')
    await writeFile(dest, 1000, 'text')
    await expect(receiver.fetch(ticket, dest).result).rejects.toMatchObject({ code: 'DESTINATION_EXISTS' })
    const s = await scrape(receiver.metricsAddress!)
    expect(value(s, 'haul_transfer_failures_total', { code: 'DESTINATION_EXISTS' })).toBe(1)
    expect(value(s, 'haul_transfers_total', { outcome: 'failed' })).toBe(1)
    expect(value(s, 'haul_transfers_total', { outcome: 'done' })).toBe(1)
  })

  it('answers only /metrics: other paths 404, other methods 405; HEAD has no body', async () => {
    const at = receiver.metricsAddress!
    expect((await get(at, '/')).status).toBe(404)
    expect((await get(at, '/metrics/x')).status).toBe(404)
    expect((await get(at, '/metrics', 'POST')).status).toBe(405)
    const head = await get(at, '/metrics', 'HEAD')
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const res = await get(at, '/metrics?x=1')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  })
})

describe('the metrics endpoint’s life', () => {
  it('engine.stop() closes the port', async () => {
    const e = await createEngine({ workers: 1, listen: LOOPBACK, metrics: { listen: '127.0.0.1:0' } })
    const at = e.metricsAddress!
    expect((await get(at)).status).toBe(200)
    await e.stop()
    await expect(get(at)).rejects.toThrow()
  })

  it('an address already taken fails createEngine with CONFIG_INVALID naming the option', async () => {
    const e = await createEngine({ workers: 1, listen: LOOPBACK, metrics: { listen: '127.0.0.1:0' } })
    try {
      const taken = createEngine({ workers: 1, listen: LOOPBACK, metrics: { listen: e.metricsAddress } })
      await expect(taken).rejects.toThrow(ConfigInvalidError)
      await expect(taken).rejects.toThrow(/^metrics\.listen/)
    } finally {
      await e.stop()
    }
  })

  it('a value that is not host:port is a ConfigInvalidError before anything starts', async () => {
    await expect(createEngine({ metrics: { listen: 'localhost' } })).rejects.toThrow(
      /^metrics\.listen must be host:port/,
    )
  })
})

describe('metrics of a peer that corrupts chunks', () => {
  it('chunks failing verification and the failure by its code, as the fetch saw them', async () => {
    const { dir, cleanup } = await tempDir()
    const receiver = await createEngine({ workers: 1, listen: LOOPBACK, metrics: { listen: '127.0.0.1:0' } })
    const wrap = corrupting((i) => i === 1)
    const sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap })
    try {
      const src = join(dir, 'always.src')
      await writeFile(src, 3 * MiB, 'random')
      const ticket = await sender.publish(src)
      const err = await receiver.fetch(ticket, join(dir, 'always.out')).result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ChunkVerificationError)
      const s = await scrape(receiver.metricsAddress!)
      expect(value(s, 'haul_chunks_verification_failed_total')).toBe(wrap.stats.corrupted)
      expect(value(s, 'haul_transfer_failures_total', { code: 'CHUNK_VERIFICATION_FAILED' })).toBe(1)
      expect(value(s, 'haul_transfers_total', { outcome: 'failed' })).toBe(1)
      expect(value(s, 'haul_transfers', { state: 'fetching' })).toBe(0)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
      await cleanup()
    }
  })
})

describe('metrics of a transfer whose connections are cut', () => {
  it('retries by code add up to the result’s retries; received bytes still equal the result’s', async () => {
    const { dir, cleanup } = await tempDir()
    const sender = await startSender({ chunking: { kind: 'fixed', size: MiB } })
    const receiver = await createEngine({
      workers: 1,
      listen: LOOPBACK,
      retry: { maxAttempts: 6, baseDelayMs: 20, maxDelayMs: 200 },
      metrics: { listen: '127.0.0.1:0' },
    })
    // The first two connections are cut within their first 2 MiB; the third is left alone.
    const proxy = await FaultProxy.start({
      target: { port: tcpPortOf(sender.network.addresses) },
      plan: (i) => (i < 2 ? { cutAfterBytes: randomInt(64 * KiB, 2 * MiB) } : undefined),
    })
    try {
      const src = join(dir, 'cut.src')
      await writeFile(src, 8 * MiB + 5, 'random')
      const ticket = proxyTicket(await sender.publish(src), proxy)
      const codes = new Map<string, number>()
      const r = await receiver.fetch(ticket, join(dir, 'cut.out'), {
        onRetry: (i) => codes.set(i.error.code, (codes.get(i.error.code) ?? 0) + 1),
      }).result
      expect(r.retries).toBeGreaterThanOrEqual(2)
      const s = await scrape(receiver.metricsAddress!)
      const retries = samples(s, 'haul_transfer_retries_total')
      expect(retries.reduce((n, [, v]) => n + v, 0)).toBe(r.retries)
      for (const [code, n] of codes) expect(value(s, 'haul_transfer_retries_total', { code })).toBe(n)
      expect(value(s, 'haul_received_bytes_total')).toBe(r.bytes - r.resume.bytesKept)
      expect(value(s, 'haul_transfers_total', { outcome: 'done' })).toBe(1)
    } finally {
      await Promise.all([sender.stop(), receiver.stop(), proxy.close()])
      await cleanup()
    }
  })
})

describe('per-peer series with more peers than the cap (real engines)', () => {
  it(`${PEER_SERIES + 2} receivers, one after the other: ${PEER_SERIES} peers have a series, the rest are in other`, async () => {
    const { dir, cleanup } = await tempDir()
    const sender = await createEngine({ workers: 1, listen: LOOPBACK, metrics: { listen: '127.0.0.1:0' } })
    const size = 64 * KiB + 1
    const peers = PEER_SERIES + 2
    try {
      const src = join(dir, 'small.src')
      await writeFile(src, size, 'random')
      const { ticket } = await sender.publish(src)
      const ids: string[] = []
      for (let i = 0; i < peers; i++) {
        const r = await createEngine({ workers: 1, listen: LOOPBACK })
        ids.push(r.peerId)
        try {
          await r.fetch(ticket, join(dir, `out${i}`)).result
        } finally {
          await r.stop()
        }
      }
      let s = await scrape(sender.metricsAddress!)
      for (let i = 0; i < 200 && (value(s, 'haul_sent_bytes_total') ?? 0) < peers * size; i++) {
        await sleep(50)
        s = await scrape(sender.metricsAddress!)
      }
      expect(value(s, 'haul_sent_bytes_total')).toBe(peers * size)
      // The first peers keep their series: none has been idle for PEER_IDLE_MS (60 s) when later ones come.
      const series = samples(s, 'haul_peer_sent_bytes_total')
      expect(series.length).toBe(PEER_SERIES + 1)
      for (const id of ids.slice(0, PEER_SERIES)) {
        expect(value(s, 'haul_peer_sent_bytes_total', { peer: id })).toBe(size)
      }
      expect(value(s, 'haul_peer_sent_bytes_total', { peer: 'other' })).toBe((peers - PEER_SERIES) * size)
    } finally {
      await sender.stop()
      await cleanup()
    }
  })
})
