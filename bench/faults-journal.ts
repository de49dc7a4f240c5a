/**
 * bench/faults-journal: what the resume journal's fsync policy costs, with the
 * journal off (no sync before the final fsync: the reference), at its default
 * (flushBytes 32 MiB), and at a tighter 4 MiB, in alternating rounds in one run:
 *   (a) the sink alone: the real PartFile + Journal, 1 MiB chunks written in
 *       order, no network (the cost of the syncs themselves);
 *   (b) the same file between two processes (tcp+noise+yamux on loopback).
 * The destination is on the real disk (not tmpfs, where fsync is free). Each
 * time includes the final fsync + rename, so deferred writeback is not hidden.
 *
 *   npx node bench/faults-journal.ts                 # 512 MiB, 2 rounds
 *   HAUL_BENCH_MIB=1024 HAUL_BENCH_ROUNDS=3 npx node bench/faults-journal.ts
 *   HAUL_BENCH_DIR=/some/disk ...                    # where the file and the copy live
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultJournalOptions, Journal, type JournalOptions, journalPath } from '../src/storage/journal.ts'
import { PartFile } from '../src/storage/part-file.ts'
import { spawnPeer } from '../test/support/children.ts'
import { ensureRandomFile, MB, MiB } from './lib/proc.ts'

const size = Number(process.env.HAUL_BENCH_MIB ?? 512) * MiB
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 2)
const dir = await mkdtemp(join(process.env.HAUL_BENCH_DIR ?? tmpdir(), 'haul-jbench-'))
const file = join(dir, 'src.bin')

const modes = {
  'journal off': { enabled: false },
  'flush 32 MiB (default)': { enabled: true },
  'flush 4 MiB': { enabled: true, flushBytes: 4 * MiB },
} as const

/** Writes `size` bytes of 1 MiB chunks through the sink, as the fetcher does; returns bytes/s. */
async function sink(journal: Partial<JournalOptions>): Promise<number> {
  const o = { ...defaultJournalOptions, ...journal }
  const dest = join(dir, 'sink.bin')
  const leafCount = Math.ceil(size / MiB)
  const chunk = Buffer.alloc(MiB, 7)
  const started = performance.now()
  const part = await PartFile.open(dest, size)
  const init = {
    cid: new Uint8Array(32),
    headerBytes: new Uint8Array(62),
    leafCount,
    part: await part.identity(),
  }
  const j = o.enabled ? await Journal.create(journalPath(dest), init, o) : Journal.memory(init, o)
  j.attach(() => part.datasync())
  for (let i = 0; i < leafCount; i++) {
    const n = Math.min(MiB, size - i * MiB)
    await part.write(i * MiB, n === MiB ? chunk : chunk.subarray(0, n))
    await j.record(i, n)
  }
  await j.flush()
  await part.commit()
  await j.remove()
  const seconds = (performance.now() - started) / 1000
  await rm(dest, { force: true })
  return size / seconds
}

await ensureRandomFile(file, size)
const sinkRates = new Map<string, number[]>()
for (let r = 0; r < rounds; r++) {
  for (const [name, journal] of Object.entries(modes)) {
    const list = sinkRates.get(name) ?? []
    list.push(await sink(journal))
    sinkRates.set(name, list)
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
function print(rates: Map<string, number[]>): void {
  const ref = median(rates.get('journal off')!)
  for (const [name, xs] of rates) {
    const m = median(xs)
    console.log(
      `  ${name.padEnd(24)} ${(m / MB).toFixed(0).padStart(5)} MB/s  (${xs.map((x) => (x / MB).toFixed(0)).join(', ')})  ${(m / ref).toFixed(3)}x of journal off`,
    )
  }
}
console.log(
  `bench/faults-journal: ${(size / MiB).toFixed(0)} MiB, destination in ${dir}; medians of ${rounds} rounds`,
)
console.log('(a) sink alone (PartFile + Journal, no network):')
print(sinkRates)

const sender = spawnPeer({ mode: 'send', file, engine: { workers: 2 } })
const { ticket } = (await sender.waitFor((e) => e.event === 'published', 'published')) as unknown as {
  ticket: string
}

const rates = new Map<string, number[]>()
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, journal] of Object.entries(modes)) {
      const dest = join(dir, 'copy.bin')
      const child = spawnPeer({ mode: 'get', ticket, dest, engine: { workers: 2, journal } })
      const end = await child.waitFor((e) => e.event === 'done' || e.event === 'error', 'result')
      if (end.event !== 'done') throw new Error(`${name}: ${JSON.stringify(end)}`)
      await child.exited
      await rm(dest, { force: true })
      const list = rates.get(name) ?? []
      list.push(end.rate as number)
      rates.set(name, list)
    }
  }
  console.log('(b) two processes, tcp+noise+yamux on loopback:')
  print(rates)
} finally {
  sender.proc.kill('SIGTERM')
  await sender.exited
  await rm(dir, { recursive: true, force: true })
}
