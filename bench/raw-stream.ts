/**
 * Raw libp2p stream throughput between two processes on loopback: bare TCP,
 * then tcp+noise+yamux with several yamux windows and write slicings, then
 * plaintext. Writes are 1 MiB (HAUL_BENCH_PART_KIB), sliced as FrameStream
 * does. Prints MB/s, the receiver's final yamux window, peak RSS of each
 * process, and ratios against bare node:net TCP and against libp2p used the
 * stock way (stock yamux settings, send()/onDrain()), all measured in this run.
 *
 *   npx node bench/raw-stream.ts                         # 1 GiB per run, 1 rep
 *   HAUL_BENCH_MIB=256 HAUL_BENCH_REPS=5 npx node bench/raw-stream.ts   # medians of 5, interleaved
 *   HAUL_BENCH_ONLY=window npx node bench/raw-stream.ts  # rows whose label contains 'window' (+ references)
 */
import { defaultYamuxTuning } from '../src/net/options.ts'
import { defaultWrapStreamOptions } from '../src/net/stream-io.ts'
import { MiB } from '../src/types.ts'
import { measureRawStream, type RawStreamOptions, type RawStreamResult } from './lib/raw-stream.ts'

const mib = Number(process.env.HAUL_BENCH_MIB ?? 1024)
const reps = Number(process.env.HAUL_BENCH_REPS ?? 1)
const partBytes = Number(process.env.HAUL_BENCH_PART_KIB ?? 1024) * 1024
const only = process.env.HAUL_BENCH_ONLY
if (!(mib > 0) || !(reps >= 1) || !(partBytes > 0))
  throw new Error('HAUL_BENCH_MIB, _REPS, _PART_KIB must be positive')

const KiB = 1024
const fmt = (n: number) => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`)
const haulMax = defaultYamuxTuning.maxStreamWindowSize
const haulSlice = defaultWrapStreamOptions.writeSliceBytes
const TCP = 'tcp (node:net)'
const STOCK = 'noise, libp2p stock (window max 16 MiB, send/onDrain)'

const rows: Array<{ label: string; opts: Omit<RawStreamOptions, 'mib'> }> = [
  { label: TCP, opts: { stack: 'tcp' } },
  { label: STOCK, opts: { stack: 'noise', io: 'raw', yamux: { maxStreamWindowSize: 16 * MiB } } },
  ...[256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB].map((max) => ({
    label: `noise, window max ${fmt(max)}, ${fmt(haulSlice)} slices${max === haulMax ? ' (haul default)' : ''}`,
    opts: { stack: 'noise' as const, yamux: { maxStreamWindowSize: max } },
  })),
  {
    label: `noise, window max ${fmt(haulMax)}, 64 KiB slices`,
    opts: { stack: 'noise', sliceBytes: 64 * KiB },
  },
  {
    label: `noise, UNSAFE initial window ${fmt(haulMax)}, ${fmt(haulSlice)} slices`,
    opts: { stack: 'noise', unsafeInitialWindow: haulMax },
  },
  { label: 'plaintext, haul default', opts: { stack: 'plaintext' } },
]

const selected = rows.filter(
  (r) => only === undefined || r.label.includes(only) || r.label === TCP || r.label === STOCK,
)
const runs = new Map<string, RawStreamResult[]>()
console.log(
  `raw-stream: ${mib} MiB per run, ${fmt(partBytes)} writes, ${reps} rep(s), two processes on 127.0.0.1`,
)
for (let rep = 0; rep < reps; rep++) {
  for (const row of selected) {
    const r = await measureRawStream({ mib, partBytes, ...row.opts })
    runs.set(row.label, [...(runs.get(row.label) ?? []), r])
    console.log(`  rep ${rep + 1}: ${row.label}: ${r.mbps.toFixed(0)} MB/s`)
  }
}

/** The run with the median throughput (its RSS and window go with it). */
function median(rs: RawStreamResult[]): RawStreamResult {
  return [...rs].sort((a, b) => a.mbps - b.mbps)[Math.floor(rs.length / 2)]!
}
const med = new Map([...runs].map(([k, v]) => [k, median(v)]))
const tcp = med.get(TCP)
const stock = med.get(STOCK)
const mbR = (n: number) => `${(n / MiB).toFixed(0)}`
const w = Math.max(...selected.map((r) => r.label.length))
console.log()
console.log(
  `${'stack'.padEnd(w)} |  MB/s | vs tcp | vs stock | final window | peak (idle) RSS MiB snd / rcv | all runs`,
)
console.log(
  `${'-'.repeat(w)}-|-------|--------|----------|--------------|-------------------------------|---------`,
)
for (const { label } of selected) {
  const r = med.get(label)!
  const vsTcp = tcp === undefined ? '-' : `${((r.mbps / tcp.mbps) * 100).toFixed(0)}%`
  const vsStock = stock === undefined ? '-' : `${(r.mbps / stock.mbps).toFixed(2)}x`
  const all = runs
    .get(label)!
    .map((x) => x.mbps.toFixed(0))
    .join(',')
  const win = r.finalWindow === 0 ? '-' : fmt(r.finalWindow)
  console.log(
    `${label.padEnd(w)} | ${r.mbps.toFixed(0).padStart(5)} | ${vsTcp.padStart(6)} | ${vsStock.padStart(8)} | ${win.padStart(12)} | ${`${mbR(r.senderPeakRss)} (${mbR(r.senderIdleRss)}) / ${mbR(r.receiverPeakRss)} (${mbR(r.receiverIdleRss)})`.padStart(29)} | ${all}`,
  )
}
