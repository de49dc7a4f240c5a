/**
 * FastCDC chunking throughput against node:crypto SHA-256 over the same random buffer, same run.
 * SHA-256 is the reference because every chunk is hashed anyway: CDC should not be the slower step.
 *
 *   npx node bench/gear.bench.ts                # 64 MiB
 *   HAUL_BENCH_MIB=256 HAUL_BENCH_ROUNDS=11 npx node bench/gear.bench.ts
 *   HAUL_BENCH_CLOCK=wall npx node bench/gear.bench.ts   # wall time instead of this thread's CPU time
 *
 * "input MB/s" counts every byte of the buffer; "gear MB/s" counts only bytes the gear loop hashed
 * (FastCDC skips the first minSize bytes of each chunk), i.e. the raw speed of the loop.
 * Two loop shapes that src/chunking/fastcdc.ts does not use run alongside, so its choice stays
 * checked: a one-byte-per-iteration loop, and the 2020 paper's "roll two bytes per iteration".
 */

import { createHash, randomBytes } from 'node:crypto'
import { Bench } from 'tinybench'
import { cdcCuts, GEAR } from '../src/chunking/fastcdc.ts'
import { type CdcSizes, DEFAULT_CDC, formatChunking } from '../src/chunking/params.ts'
import { KiB, MiB } from '../src/types.ts'

function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback)
  if (!(Number.isInteger(v) && v > 0)) throw new Error(`${name} must be a positive integer, got ${v}`)
  return v
}
const mib = envInt('HAUL_BENCH_MIB', 64)
const rounds = envInt('HAUL_BENCH_ROUNDS', 7)
const clock = process.env.HAUL_BENCH_CLOCK ?? 'cpu'
if (clock !== 'cpu' && clock !== 'wall') throw new Error(`HAUL_BENCH_CLOCK must be cpu or wall, got ${clock}`)
// Every task is synchronous on this thread, so this thread's CPU time is its cost; unlike wall
// time it does not count time spent waiting for a core on a shared, oversubscribed machine.
const threadCpuMs = (): number => {
  const u = process.threadCpuUsage()
  return (u.user + u.system) / 1000
}

const size = mib * MiB
const rb = randomBytes(size)
// A plain Uint8Array, as the chunk reader hands to the cutter.
const data = new Uint8Array(rb.buffer, rb.byteOffset, rb.length)
const DEF: CdcSizes = DEFAULT_CDC
const MIN64: CdcSizes = { minSize: 64 * KiB, avgSize: MiB, maxSize: 4 * MiB }

const G = new Int32Array(GEAR)
const topBits = (n: number) => (-1 << (32 - n)) | 0
const MASK_S = topBits(22) // log2(1 MiB) + 2
const MASK_L = topBits(18)

type Scan = (d: Uint8Array, i: number, normal: number, end: number, maskS: number, maskL: number) => number

/** Runs a scan over all of `d` the way CdcCutter.nextCut does; returns the chunk lengths. */
function cutsWith(scan: Scan, d: Uint8Array, p: CdcSizes, maskS: number, maskL: number): number[] {
  const out: number[] = []
  for (let s = 0; s < d.length; ) {
    const limit = Math.min(d.length - s, p.maxSize)
    const cut =
      limit > p.minSize ? scan(d, s + p.minSize, s + Math.min(p.avgSize, limit), s + limit, maskS, maskL) : -1
    const len = cut < 0 ? limit : cut - s
    out.push(len)
    s += len
  }
  return out
}

/** The textbook loop: one byte per iteration, no unrolling. */
const scanOneByte: Scan = (d, i, normal, end, maskS, maskL) => {
  let fp = 0
  for (; i < normal; i++) {
    fp = ((fp << 1) + G[d[i]!]!) | 0
    if ((fp & maskS) === 0) return i + 1
  }
  for (; i < end; i++) {
    fp = ((fp << 1) + G[d[i]!]!) | 0
    if ((fp & maskL) === 0) return i + 1
  }
  return -1
}

// The 2020 trick keeps 2*fp after the first byte of a pair and tests it against mask << 1, which
// drops the mask's bit 31: it needs masks one bit lower, so its cuts differ from haul's.
const GLS = G.map((g) => g << 1)
const LOW_S = MASK_S >>> 1
const LOW_L = MASK_L >>> 1

/** Two bytes per iteration (FastCDC 2020), unrolled by 8 bytes like fastcdc.ts's loop. */
const scanTwoByte: Scan = (d, i, normal, end, maskS, maskL) => {
  let fp = 0
  let m = maskS
  let barrier = normal
  for (let phase = 0; phase < 2; phase++) {
    const ml = m << 1
    const last8 = barrier - 7
    for (; i < last8; i += 8) {
      fp = ((fp << 2) + GLS[d[i]!]!) | 0
      if ((fp & ml) === 0) return i + 1
      fp = (fp + G[d[i + 1]!]!) | 0
      if ((fp & m) === 0) return i + 2
      fp = ((fp << 2) + GLS[d[i + 2]!]!) | 0
      if ((fp & ml) === 0) return i + 3
      fp = (fp + G[d[i + 3]!]!) | 0
      if ((fp & m) === 0) return i + 4
      fp = ((fp << 2) + GLS[d[i + 4]!]!) | 0
      if ((fp & ml) === 0) return i + 5
      fp = (fp + G[d[i + 5]!]!) | 0
      if ((fp & m) === 0) return i + 6
      fp = ((fp << 2) + GLS[d[i + 6]!]!) | 0
      if ((fp & ml) === 0) return i + 7
      fp = (fp + G[d[i + 7]!]!) | 0
      if ((fp & m) === 0) return i + 8
    }
    for (; i < barrier; i++) {
      fp = ((fp << 1) + G[d[i]!]!) | 0
      if ((fp & m) === 0) return i + 1
    }
    m = maskL
    barrier = end
  }
  return -1
}

const SHA = 'sha256 node:crypto'
const CDC = `cdcCuts default (${formatChunking(DEFAULT_CDC)})`
const CDC64 = 'cdcCuts cdc:64KiB:1MiB:4MiB'
const PLAIN = 'one byte per iteration (default params)'
const TWO = 'two bytes per iteration, FastCDC 2020 (default params)'

const same = (a: number[], b: number[]) => JSON.stringify(a) === JSON.stringify(b)
if (
  !same(cutsWith(scanOneByte, data, DEF, MASK_S, MASK_L), cdcCuts(data, DEF, true).lengths) ||
  !same(cutsWith(scanTwoByte, data, DEF, LOW_S, LOW_L), cutsWith(scanOneByte, data, DEF, LOW_S, LOW_L))
) {
  throw new Error('a loop variant disagrees with the others: the bench is not measuring like with like')
}

let sink = 0
const tasks: [string, () => void][] = [
  [CDC, () => void (sink += cdcCuts(data, DEF, true).lengths.length)],
  [CDC64, () => void (sink += cdcCuts(data, MIN64, true).lengths.length)],
  [PLAIN, () => void (sink += cutsWith(scanOneByte, data, DEF, MASK_S, MASK_L).length)],
  [TWO, () => void (sink += cutsWith(scanTwoByte, data, DEF, LOW_S, LOW_L).length)],
  [SHA, () => void (sink += createHash('sha256').update(data).digest()[0]!)],
]

// Several short rounds with every task in each, ratios taken within a round: the load on a shared
// machine moves between rounds more than within one.
const perRound: Map<string, number>[] = []
for (let round = 0; round < rounds; round++) {
  const bench = new Bench({
    iterations: 3,
    time: 0,
    warmup: round === 0,
    warmupIterations: 2,
    warmupTime: 0,
    throws: true,
    ...(clock === 'cpu' ? { now: threadCpuMs } : {}),
  })
  for (const [label, fn] of round % 2 === 0 ? tasks : [...tasks].reverse()) bench.add(label, fn)
  await bench.run()
  const mbps = new Map<string, number>()
  for (const [label] of tasks) {
    const r = bench.getTask(label)?.result
    if (r === undefined || !('latency' in r)) throw new Error(`task ${label} did not complete`)
    mbps.set(label, size / 1e6 / (r.latency.mean / 1000))
  }
  perRound.push(mbps)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
const med = (label: string) => median(perRound.map((m) => m.get(label)!))
const ratio = (a: string, b: string) => median(perRound.map((m) => m.get(a)! / m.get(b)!)).toFixed(2)
/** Bytes the gear loop looks at: each chunk's bytes past minSize. */
const gearShare = (p: CdcSizes) =>
  cdcCuts(data, p, true).lengths.reduce((a, len) => a + Math.max(0, len - p.minSize), 0) / size

console.log(`buffer ${mib} MiB random, ${rounds} rounds (medians), ${clock} clock, Node ${process.version}`)
console.log(`${SHA}: ${med(SHA).toFixed(0)} MB/s (reference)`)
for (const [label, p] of [
  [CDC, DEF],
  [CDC64, MIN64],
] as const) {
  console.log(
    `${label}: input ${med(label).toFixed(0)} MB/s, gear ${(med(label) * gearShare(p)).toFixed(0)} MB/s, ` +
      `ratio to sha256 ${ratio(label, SHA)}`,
  )
}
console.log(`${PLAIN}: input ${med(PLAIN).toFixed(0)} MB/s; cdcCuts is ${ratio(CDC, PLAIN)}x faster`)
console.log(`${TWO}: input ${med(TWO).toFixed(0)} MB/s; cdcCuts is ${ratio(CDC, TWO)}x faster`)
if (sink === -1) console.log(sink)
