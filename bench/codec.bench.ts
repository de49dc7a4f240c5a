/**
 * Per-chunk codec throughput on one thread: lz4 (lz4-wasm) and zstd level 1 (node:zlib), compress
 * and decompress, on text-like and random chunks, against memcpy and SHA-256 of the same bytes
 * measured in the same run. Also the candidate `auto` strategies the codec policy chose between.
 *
 *   npx node bench/codec.bench.ts
 *   HAUL_BENCH_CHUNK_KIB=4096 HAUL_BENCH_TIME_MS=300 HAUL_BENCH_ROUNDS=9 npx node bench/codec.bench.ts
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import * as lz4Package from 'lz4-wasm-nodejs'
import { Bench } from 'tinybench'
import type { Codec } from '../src/types.ts'
import { KiB } from '../src/types.ts'
import { compress, compressByPolicy, decompress, MAX_KEPT_RATIO } from '../src/workers/codecs.ts'
import { logLines, randomData, textLike } from '../test/workers/data.ts'

const chunk = Number(process.env.HAUL_BENCH_CHUNK_KIB ?? 1024) * KiB
const time = Number(process.env.HAUL_BENCH_TIME_MS ?? 150)
// This machine is shared: tasks run in interleaved rounds and each figure is the median round, so
// a burst of load from elsewhere skews one round of every task rather than all of one task.
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 7)

interface Row {
  data: string
  task: string
  mbps: number
  /** Output size over input size, for tasks that produce a payload. */
  ratio?: number
}

const rows: Row[] = []

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]!
}

/** The pre-decision strategies for `auto`: full lz4 then keep-or-drop, full zstd then keep-or-drop. */
function keepIfPays(codec: Codec, plain: Uint8Array): Uint8Array {
  const c = compress(codec, plain)
  return c.length <= plain.length * MAX_KEPT_RATIO ? c : plain
}

/** Real text: JavaScript source from the TypeScript compiler (1 MiB from its middle). */
function source(n: number): Uint8Array {
  const js = readFileSync(createRequire(import.meta.url).resolve('typescript/lib/typescript.js'))
  const start = Math.max(0, (js.length - n) >> 1)
  const out = new Uint8Array(n)
  for (let at = 0; at < n; at += js.length - start) out.set(js.subarray(start, start + n - at), at)
  return out
}

const DATA = [
  ['source', source(chunk)],
  ['text', textLike(chunk, 1)],
  ['logs', logLines(chunk, 1)],
  ['random', randomData(chunk, 2)],
] as const

for (const [name, plain] of DATA) {
  const lz4 = compress('lz4', plain)
  const zstd = compress('zstd', plain)
  const dst = new Uint8Array(chunk)
  const ratios: Record<string, number> = {
    'lz4 compress': lz4.length / chunk,
    'zstd-1 compress': zstd.length / chunk,
    'auto (probe lz4 64 KiB, then zstd)': compressByPolicy('auto', plain).payload.length / chunk,
    'alt auto: full lz4, keep if <= 0.9': keepIfPays('lz4', plain).length / chunk,
    'alt auto: full zstd, keep if <= 0.9': keepIfPays('zstd', plain).length / chunk,
  }
  const tasks: [string, () => void][] = [
    ['memcpy (reference)', () => dst.set(plain)],
    ['sha-256 node:crypto (reference)', () => createHash('sha256').update(plain).digest()],
    ['lz4 compress', () => compress('lz4', plain)],
    ['lz4 decompress, new buffer', () => decompress('lz4', lz4, chunk)],
    ['lz4 decompress into recycled', () => decompress('lz4', lz4, chunk, dst)],
    ['lz4 decompress, package glue', () => lz4Package.decompress(lz4)],
    ['zstd-1 compress', () => compress('zstd', plain)],
    ['zstd decompress, new buffer', () => decompress('zstd', zstd, chunk)],
    ['zstd decompress into recycled', () => decompress('zstd', zstd, chunk, dst)],
    ['auto (probe lz4 64 KiB, then zstd)', () => compressByPolicy('auto', plain)],
    ['alt auto: full lz4, keep if <= 0.9', () => keepIfPays('lz4', plain)],
    ['alt auto: full zstd, keep if <= 0.9', () => keepIfPays('zstd', plain)],
  ]
  const means = new Map<string, number[]>()
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({ time, iterations: 8, warmupTime: 20 })
    for (const [task, fn] of tasks) bench.add(task, fn)
    await bench.run()
    for (const task of bench.tasks) {
      const r = task.result
      if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`)
      means.set(task.name, [...(means.get(task.name) ?? []), r.latency.mean])
    }
  }
  for (const [task, ms] of means) {
    const ratio = ratios[task]
    rows.push({ data: name, task, mbps: chunk / 1e6 / (median(ms) / 1000), ...(ratio ? { ratio } : {}) })
  }
}

console.log(`chunk ${chunk / KiB} KiB, median of ${rounds} rounds x ${time} ms per task, ${process.version}`)
for (const [data] of DATA) {
  const sha = rows.find((r) => r.data === data && r.task.startsWith('sha-256'))!.mbps
  console.log(`\n${data}:`)
  console.table(
    rows
      .filter((r) => r.data === data)
      .map((r) => ({
        task: r.task,
        'MB/s': Math.round(r.mbps),
        'x sha-256': (r.mbps / sha).toFixed(2),
        'out/in': r.ratio === undefined ? '' : r.ratio.toFixed(3),
      })),
  )
}
