import { describe, expect, it } from 'vitest'
import { runLoadTest } from '../../src/loadtest/index.ts'
import type { LoadTestResult } from '../../src/loadtest/options.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** Every transfer went both ways between every pair: each process both served and fetched. */
function expectEveryPairBothWays(r: LoadTestResult, processes: number): void {
  const pairs = new Set(r.records.map((x) => `${x.from}>${x.to}`))
  for (let a = 0; a < processes; a++)
    for (let b = 0; b < processes; b++) if (a !== b) expect(pairs.has(`${a}>${b}`), `${a} -> ${b}`).toBe(true)
}

/**
 * Real engine processes fetching from each other at once (the CI-sized version of
 * bench/mesh.ts). Each download is hashed by its receiving process and compared with the
 * generated file (checkDownloads), independently of haul's own verification.
 */
describe('mesh: every process serves and fetches, to and from the same peers at once', () => {
  it('2 processes, 300 transfers all in flight at once: 100 % complete, byte-identical, not one retry', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 300,
      concurrency: 300,
      minBytes: 64 * KiB,
      maxBytes: 2 * MiB,
      files: 16,
      topology: 'mesh',
      durationMs: 120_000,
      checkDownloads: true,
    })
    expect(r.errors).toEqual({})
    expect(r.successRate).toBe(1)
    expect(r.retries).toBe(0)
    expectEveryPairBothWays(r, 2)
  }, 150_000)

  it('4 processes, 300 transfers among all twelve directed pairs: 100 % complete, byte-identical', async () => {
    const r = await runLoadTest({
      processes: 4,
      transfers: 300,
      concurrency: 300,
      minBytes: 64 * KiB,
      maxBytes: 1 * MiB,
      files: 16,
      topology: 'mesh',
      durationMs: 120_000,
      checkDownloads: true,
    })
    expect(r.errors).toEqual({})
    expect(r.successRate).toBe(1)
    expectEveryPairBothWays(r, 4)
  }, 150_000)

  it('2 processes with every connection cut after 200–2,000 ms and all links stalled 1 s in 3: 100 % complete, byte-identical', async () => {
    const r = await runLoadTest({
      processes: 2,
      transfers: 80,
      concurrency: 40,
      minBytes: 512 * KiB,
      maxBytes: 4 * MiB,
      files: 8,
      topology: 'mesh',
      durationMs: 150_000,
      checkDownloads: true,
      // A rate per link so transfers outlive cuts; retries quick so the run stays short.
      faults: { cutEveryMs: [200, 2_000], stallEveryMs: 3_000, stallMs: 1_000, rateBytesPerSec: 20_000_000 },
      engine: { workers: 1, retry: { baseDelayMs: 50, maxDelayMs: 500, maxAttempts: 30 } },
    })
    expect(r.errors).toEqual({})
    expect(r.successRate).toBe(1)
    expect(r.faultsInjected!.cuts).toBeGreaterThan(3)
    expect(r.faultsInjected!.stalls).toBeGreaterThan(0)
    expect(r.retries).toBeGreaterThan(0)
    expect(r.bytesResent!).toBeGreaterThan(0)
    expectEveryPairBothWays(r, 2)
  }, 180_000)
})
