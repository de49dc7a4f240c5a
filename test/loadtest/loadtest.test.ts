import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { decodeTicket } from '../../src/engine/ticket.ts'
import { PEER_SCRIPT, runLoadTest, writeReport } from '../../src/loadtest/index.ts'
import type { LoadTestFaults, LoadTestResult } from '../../src/loadtest/options.ts'
import { FaultProxy, type FaultProxyOptions, proxyTicket, tcpPortOf } from '../support/fault-proxy.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** Debian's chromium (`.ci/run` installs it); found on PATH or not at all. */
const CHROMIUM = ['chromium', 'chromium-browser', 'google-chrome'].find(
  (b) => spawnSync('sh', ['-c', `command -v ${b}`]).status === 0,
)

/** One FaultProxy in front of each sender process, made on first use. */
function proxied(o: Omit<FaultProxyOptions, 'target'>) {
  const proxies = new Map<number, FaultProxy>()
  const faults: LoadTestFaults = {
    async wrapTicket(ticket, sender) {
      let p = proxies.get(sender)
      if (p === undefined) {
        p = await FaultProxy.start({ ...o, target: { port: tcpPortOf(decodeTicket(ticket).addrs) } })
        proxies.set(sender, p)
      }
      return proxyTicket(ticket, p)
    },
    wireBytesDown: () => [...proxies.values()].reduce((s, p) => s + p.stats.bytesDown, 0),
  }
  return { faults, proxies, close: () => Promise.all([...proxies.values()].map((p) => p.close())) }
}

describe('haul loadtest harness', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  let result: LoadTestResult | undefined
  let htmlPath = ''

  it('runs M transfers among K engine processes and reports success, goodput, percentiles, peak RSS', async () => {
    expect(existsSync(PEER_SCRIPT)).toBe(true) // `npm run build` first: the engine processes run dist/
    const samples: number[] = []
    result = await runLoadTest({
      processes: 3,
      transfers: 12,
      concurrency: 4,
      minBytes: 64 * KiB,
      maxBytes: 3 * MiB,
      files: 6,
      durationMs: 60_000,
      sampleMs: 100,
      onSample: (s) => samples.push(s.t),
    })
    expect(result.stoppedBy).toBe('completed')
    expect(result.successRate).toBe(1)
    expect(result.records).toHaveLength(12)
    expect(result.bytesDelivered).toBe(result.records.reduce((s, r) => s + r.bytes, 0))
    expect(result.goodput).toBeGreaterThan(0)
    const c = result.completion
    expect(c.p50).toBeGreaterThan(0)
    expect(c.p50).toBeLessThanOrEqual(c.p95)
    expect(c.p95).toBeLessThanOrEqual(c.p99)
    expect(c.p99).toBeLessThanOrEqual(c.max)
    expect(result.processes).toHaveLength(3)
    for (const p of result.processes) expect(p.peakRss).toBeGreaterThanOrEqual(p.idleRss)
    for (const r of result.records) expect(r.from).not.toBe(r.to)
    expect(result.bytesResent).toBeNull() // no fault proxy: not measured, and not pretended
    expect(samples.length).toBeGreaterThan(1)
    // Every sample carries the RSS of every process.
    expect(result.samples.every((s) => s.rss.length === 3)).toBe(true)

    const dir = await mkdtemp(join(tmpdir(), 'haul-lt-report-'))
    dirs.push(dir)
    const { json, html } = await writeReport(result, dir)
    htmlPath = html
    const parsed = JSON.parse(await readFile(json, 'utf8')) as LoadTestResult
    expect(parsed.ok).toBe(12)
    const page = await readFile(html, 'utf8')
    expect(page).not.toMatch(/<script|src="http|href="http/) // self-contained
  })

  it.skipIf(CHROMIUM === undefined)(
    `the HTML report renders in headless Chromium with its three charts${CHROMIUM === undefined ? ' — SKIPPED: no chromium on PATH (apt-get install -y chromium)' : ''}`,
    async () => {
      expect(result).toBeDefined()
      const profile = await mkdtemp(join(tmpdir(), 'haul-chromium-'))
      dirs.push(profile)
      const dom = execFileSync(
        CHROMIUM!,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
          `--user-data-dir=${profile}`,
          '--dump-dom',
          `file://${htmlPath}`,
        ],
        { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
      )
      // The DOM as Chromium parsed it: each chart is an <svg> holding its data points.
      const chart = (id: string) => {
        const m = new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(dom)
        expect(m, `chart ${id}`).not.toBeNull()
        return m![0]
      }
      expect((chart('throughput').match(/<circle class="pt"/g) ?? []).length).toBeGreaterThan(2)
      expect(chart('throughput')).toMatch(/<polyline[^>]+points="[\d., ]{10,}"/)
      const bars = [...chart('completion').matchAll(/<rect class="bar"[^>]*data-count="(\d+)"/g)]
      expect(bars.reduce((s, m) => s + Number(m[1]), 0)).toBe(12)
      expect(chart('memory').match(/<g class="series"/g)).toHaveLength(3)
      expect(dom).toContain('100.0 %')
    },
  )

  it('stops by itself at its deadline, cancelling what is still running', async () => {
    // 1 MB/s links make 6 transfers of ~4 MiB take far longer than the 3 s allowed.
    const net = proxied({ rateBytesPerSec: 1_000_000 })
    try {
      const r = await runLoadTest({
        processes: 2,
        transfers: 6,
        concurrency: 3,
        minBytes: 4 * MiB,
        maxBytes: 4 * MiB,
        files: 2,
        topology: 'fan-out',
        durationMs: 3_000,
        faults: net.faults,
      })
      expect(r.stoppedBy).toBe('deadline')
      expect(r.ok).toBeLessThan(6)
      expect(r.failed + r.unfinished).toBe(6 - r.ok)
      // The deadline, then at most the 5 s grace for cancelled transfers to report back.
      expect(r.seconds).toBeLessThan(3 + 5 + 1)
      expect(Object.keys(r.errors)).toEqual(r.failed > 0 ? ['ABORTED'] : [])
    } finally {
      await net.close()
    }
  })

  it('with faults through the fault proxy: cut connections are retried, and bytes re-sent are reported', async () => {
    // The first connection to each sender is cut after 1.5 MB: its transfers reconnect and resume.
    const net = proxied({ plan: (i) => (i === 0 ? { cutAfterBytes: 1_500_000 } : undefined) })
    try {
      const r = await runLoadTest({
        processes: 2,
        transfers: 4,
        concurrency: 4,
        minBytes: 2 * MiB,
        maxBytes: 3 * MiB,
        files: 2,
        topology: 'fan-out',
        durationMs: 60_000,
        engine: { workers: 1, retry: { baseDelayMs: 50, maxDelayMs: 200 } },
        faults: net.faults,
      })
      expect(r.successRate).toBe(1)
      expect(r.retries).toBeGreaterThan(0)
      expect([...net.proxies.values()][0]!.stats.cuts).toBe(1)
      expect(r.bytesResent).not.toBeNull()
      expect(r.bytesResent!).toBeGreaterThanOrEqual(0)
    } finally {
      await net.close()
    }
  })

  it('built-in faults: connections cut every 300–700 ms and a stall; every transfer completes, the report counts cuts, retries and bytes re-sent', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 6,
      concurrency: 3,
      minBytes: 3 * MiB,
      maxBytes: 6 * MiB,
      files: 2,
      topology: 'fan-out',
      durationMs: 90_000,
      // A slow link so that transfers outlive several cuts.
      faults: { cutEveryMs: [300, 700], stallEveryMs: 1_000, stallMs: 200, rateBytesPerSec: 8_000_000 },
      engine: { workers: 1, retry: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 30 } },
    })
    expect(r.stoppedBy).toBe('completed')
    expect(r.successRate).toBe(1)
    expect(r.faultsInjected).not.toBeNull()
    expect(r.faultsInjected!.cuts).toBeGreaterThan(0)
    expect(r.faultsInjected!.stalls).toBeGreaterThan(0)
    expect(r.retries).toBeGreaterThan(0)
    // Cut connections lose what was in flight: more crossed the links than was delivered.
    expect(r.bytesResent).not.toBeNull()
    expect(r.bytesResent!).toBeGreaterThan(0)
    expect(r.options.faults).toMatchObject({ cutEveryMs: [300, 700], stallMs: 200 })
    const dir = await mkdtemp(join(tmpdir(), 'haul-lt-faults-'))
    dirs.push(dir)
    const { json, html } = await writeReport(r, dir)
    const parsed = JSON.parse(await readFile(json, 'utf8')) as LoadTestResult
    expect(parsed.faultsInjected).toEqual(r.faultsInjected)
    expect(parsed.bytesResent).toBe(r.bytesResent)
    const page = await readFile(html, 'utf8')
    expect(page).toContain(`${r.faultsInjected!.cuts} cuts`)
    expect(page).not.toContain('not measured')
  })

  it('rejects a malformed fault spec before starting anything', async () => {
    await expect(runLoadTest({ faults: { cutEveryMs: [500, 100] } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
  })
})
