import { type ChildProcess, execFileSync, fork, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PEER_SCRIPT, renderHtml, runLoadTest, writeReport } from '../../src/loadtest/index.ts'
import type { LoadTestFaults, LoadTestResult } from '../../src/loadtest/options.ts'
import type { FetchDone, FromPeer, ToPeer } from '../../src/loadtest/peer.ts'
import { ENGINE_NODE_FLAGS } from '../../src/process-flags.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
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
        p = await FaultProxy.start({
          ...o,
          target: { port: tcpPortOf(decodeSwarmTicket(ticket).providers[0]!.addrs) },
        })
        proxies.set(sender, p)
      }
      return proxyTicket(ticket, p)
    },
    wireBytes: () => [...proxies.values()].reduce((s, p) => s + p.stats.bytesDown + p.stats.bytesUp, 0),
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
      // What the harness cancelled is unfinished, not failed: nothing failed on its own here.
      expect(r.failed).toBe(0)
      expect(r.errors).toEqual({})
      expect(r.unfinished).toBe(6 - r.ok)
      // Three were running at the deadline (1 MB/s cannot finish one 4 MiB file in 3 s).
      expect(r.cancelled).toBeGreaterThan(0)
      expect(r.cancelled).toBeLessThanOrEqual(r.unfinished)
      const cancelled = r.records.filter((x) => x.cancelled === true)
      expect(cancelled).toHaveLength(r.cancelled)
      for (const x of cancelled) {
        expect(x.ok).toBe(false)
        expect(x.error).toBeUndefined()
        expect(x.endedAt).toBeGreaterThanOrEqual(3 - 0.5)
      }
      // The deadline, then at most the 5 s grace for cancelled transfers to report back.
      expect(r.seconds).toBeLessThan(3 + 5 + 1)
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

  it('built-in faults in a mesh (every process serves and fetches over one connection per pair): bytes re-sent count both directions, downloads match the generated files', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 10,
      concurrency: 4,
      minBytes: 3 * MiB,
      maxBytes: 6 * MiB,
      files: 4,
      topology: 'mesh',
      durationMs: 90_000,
      checkDownloads: true,
      // A slow link so that transfers outlive several cuts. A connection must live long enough to
      // carry a 1 MiB chunk to each of the transfers sharing it: cut every 300–700 ms at 6 MB/s,
      // two transfers a direction got bytes on every connection but rarely a whole chunk, and the
      // run took 5 to over 60 s.
      faults: { cutEveryMs: [500, 1_500], stallEveryMs: 1_500, stallMs: 200, rateBytesPerSec: 8_000_000 },
      engine: { workers: 1, retry: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 30 } },
    })
    expect(r.stoppedBy).toBe('completed')
    expect(r.successRate).toBe(1)
    expect(r.options.checkDownloads).toBe(true)
    // Both processes sent: the files are spread over both.
    expect(new Set(r.records.map((x) => x.from)).size).toBe(2)
    expect(r.faultsInjected).not.toBeNull()
    expect(r.faultsInjected!.cuts).toBeGreaterThan(0)
    const cuts = r.faultsInjected!.events.filter((e) => e.kind === 'cut')
    expect(cuts).toHaveLength(r.faultsInjected!.cuts) // far below MAX_FAULT_EVENTS: every one kept
    expect(r.faultsInjected!.eventsDropped).toBe(0)
    // Both directions of every proxy: the mesh's reverse-direction downloads are on the wire too.
    expect(r.wireBytes).not.toBeNull()
    expect(r.wireBytes!).toBeGreaterThan(r.bytesDelivered)
    expect(r.bytesResent).not.toBeNull()
    expect(r.bytesResent!).toBeGreaterThan(0)
    for (const x of r.records) {
      expect(typeof x.retries).toBe('number')
      expect(Number.isFinite(x.endedAt)).toBe(true)
      expect(x.endedAt).toBeGreaterThan(0)
    }
    expect(r.records.reduce((s, x) => s + x.retries, 0)).toBe(r.retries)
    const page = renderHtml(r)
    expect(page).toMatch(/<tr id="row-topology"><th>topology<\/th><td>mesh/)
    expect(page).toMatch(/<g class="markers" data-kind="cut"/)
    expect((page.match(/<line class="mark-cut"/g) ?? []).length).toBeGreaterThan(0)
    expect(page).toContain(`${r.faultsInjected!.cuts} cuts`)
    expect(page).toContain('each connection cut after 500–1500 ms (reset)')
    // Its run took 5 to 47 s on two loaded cores (durationMs bounds it at 90).
  }, 120_000)

  it("a failed transfer reports its retries (counted by the fetch's onRetry), and the report marks it with its code", async () => {
    // Every connection is cut before a byte passes: no transfer can ever start.
    const net = proxied({ plan: () => ({ cutAfterBytes: 0 }) })
    try {
      const r = await runLoadTest({
        processes: 2,
        transfers: 2,
        concurrency: 2,
        minBytes: 256 * KiB,
        maxBytes: 256 * KiB,
        files: 1,
        topology: 'fan-out',
        durationMs: 60_000,
        checkDownloads: true,
        engine: {
          workers: 1,
          retry: { maxAttempts: 3, maxAttemptsFirstContact: 3, baseDelayMs: 10, maxDelayMs: 20 },
        },
        faults: net.faults,
      })
      expect(r.stoppedBy).toBe('completed')
      expect(r.ok).toBe(0)
      expect(r.failed).toBe(2)
      expect(r.cancelled).toBe(0)
      expect(r.records).toHaveLength(2)
      for (const x of r.records) {
        expect(x.ok).toBe(false)
        expect(x.retries).toBe(2) // 3 attempts
        expect(x.error).toMatch(/^[A-Z_]+$/) // a HaulError code
      }
      expect(r.retries).toBe(4)
      const codes = Object.keys(r.errors)
      expect(codes.length).toBeGreaterThan(0)
      expect(Object.values(r.errors).reduce((a, b) => a + b, 0)).toBe(2)
      const page = renderHtml(r)
      for (const code of codes) {
        expect(page).toContain(
          `<g class="markers" data-kind="failure" data-code="${code}" data-count="${r.errors[code]}"`,
        )
        expect(page).toContain(`failed: ${code} × ${r.errors[code]}`)
      }
      expect((page.match(/<path class="mark-failure"/g) ?? []).length).toBeGreaterThan(0)
    } finally {
      await net.close()
    }
  })

  it('with a content check, an engine process fails a download whose SHA-256 differs with CONTENT_MISMATCH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'haul-lt-check-'))
    dirs.push(dir)
    const file = join(dir, 'f.bin')
    const data = randomBytes(300 * KiB)
    await writeFile(file, data)
    const children: ChildProcess[] = []
    const start = async (): Promise<(m: ToPeer) => Promise<FromPeer>> => {
      const c = fork(PEER_SCRIPT, [], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        execArgv: [...ENGINE_NODE_FLAGS],
      })
      children.push(c)
      const talk = (m: ToPeer, want: FromPeer['type']): Promise<FromPeer> =>
        new Promise((resolve) => {
          const on = (x: FromPeer): void => {
            if (x.type !== want) return
            c.off('message', on)
            resolve(x)
          }
          c.on('message', on)
          c.send(m)
        })
      await talk({ type: 'init', engine: { workers: 1 }, tickMs: 1_000 }, 'ready')
      return (m) => talk(m, m.type === 'publish' ? 'published' : 'done')
    }
    try {
      const [sender, receiver] = await Promise.all([start(), start()])
      const { ticket } = (await sender({ type: 'publish', id: 0, path: file })) as Extract<
        FromPeer,
        { type: 'published' }
      >
      const fetch = async (id: number, sha256: string): Promise<FetchDone> => {
        const m = (await receiver({
          type: 'fetch',
          id,
          ticket,
          dest: join(dir, `out-${id}.bin`),
          sha256,
        })) as Extract<FromPeer, { type: 'done' }>
        return m.results[0]!
      }
      const right = createHash('sha256').update(data).digest('hex')
      expect(await fetch(1, right)).toMatchObject({ id: 1, ok: true, retries: 0 })
      const wrong = await fetch(2, createHash('sha256').update('something else').digest('hex'))
      expect(wrong).toMatchObject({ id: 2, ok: false, error: 'CONTENT_MISMATCH', bytes: data.length })
      // Either way the download is gone: a long run does not fill the disk.
      expect(existsSync(join(dir, 'out-1.bin'))).toBe(false)
      expect(existsSync(join(dir, 'out-2.bin'))).toBe(false)
    } finally {
      await Promise.all(
        children.map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return
          const exited = new Promise((r) => c.once('exit', r))
          if (c.connected) c.send({ type: 'exit' } satisfies ToPeer)
          const kill = setTimeout(() => c.kill('SIGKILL'), 5_000)
          await exited
          clearTimeout(kill)
        }),
      )
    }
  })

  it('rejects a malformed fault spec before starting anything', async () => {
    await expect(runLoadTest({ faults: { cutEveryMs: [500, 100] } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
  })
})
