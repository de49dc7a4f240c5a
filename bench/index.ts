/**
 * bench/index: index a generated file with fixed and content-defined chunking,
 * against plain single-threaded node:crypto SHA-256 of the same file measured
 * in the same run. Each measurement is its own process: the real `haul index`
 * CLI (compiled, `npm run build`), its peak RSS sampled from /proc.
 *
 *   npx node bench/index.ts                 # 1 GiB
 *   HAUL_BENCH_GIB=4 npx node bench/index.ts
 *   HAUL_BENCH_MIB=256 npx node bench/index.ts
 *
 * Targets (issue 2): fixed ≥ 1.0x the SHA-256 rate, CDC ≥ 0.5x; peak RSS < 150 MB and flat in file size.
 */

import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureRandomFile, MB, runChild, runMeasured, sizeFromEnv } from './lib/proc.ts'

interface Run {
  mode: string
  bytes: number
  seconds: number
  chunks?: number
  peakRss: number
}

const size = sizeFromEnv(1)
const file = process.env.HAUL_BENCH_FILE ?? join(tmpdir(), `haul-bench-${size}.bin`)
const modes = (process.env.HAUL_BENCH_MODES ?? 'fixed:1m,fixed:2m,fixed:4m,cdc').split(',')
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 2)
const reference = new URL('./sha256-child.ts', import.meta.url).pathname
const haul = new URL('../bin/haul.js', import.meta.url).pathname

async function indexOnce(mode: string): Promise<Run> {
  if (mode === 'sha256') return runChild<Run>(reference, [file])
  const out = `${file}.bench.haul`
  // Executed as users run it (npx haul): its shebang flags apply.
  const r = await runMeasured(haul, ['index', file, '--json', '--chunking', mode, '--out', out])
  await rm(out, { force: true })
  const e = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; bytes: number; seconds: number; chunks: number })
    .find((x) => x.event === 'indexed')!
  return { mode, bytes: e.bytes, seconds: e.seconds, chunks: e.chunks, peakRss: r.peakRss }
}

await ensureRandomFile(file, size)
console.log(`bench/index: ${(size / MB).toFixed(0)} MB random file ${file}, best of ${rounds} rounds`)

const best = new Map<string, Run>()
for (let round = 0; round < rounds; round++) {
  // Interleave so drift on a shared machine hits every mode alike.
  for (const mode of ['sha256', ...modes]) {
    const r = await indexOnce(mode)
    const prev = best.get(mode)
    if (prev === undefined || r.seconds < prev.seconds)
      best.set(mode, { ...r, peakRss: Math.max(r.peakRss, prev?.peakRss ?? 0) })
  }
}
const ref = best.get('sha256')!
const refRate = ref.bytes / ref.seconds / MB
console.log(`\n| mode | MB/s | ratio vs SHA-256 | chunks | peak RSS MB |`)
console.log(`|---|---|---|---|---|`)
console.log(
  `| node:crypto SHA-256, 1 thread (reference) | ${refRate.toFixed(0)} | 1.00 | - | ${(ref.peakRss / MB).toFixed(0)} |`,
)
for (const mode of modes) {
  const r = best.get(mode)!
  const rate = r.bytes / r.seconds / MB
  console.log(
    `| ${mode} | ${rate.toFixed(0)} | ${(rate / refRate).toFixed(2)} | ${r.chunks} | ${(r.peakRss / MB).toFixed(0)} |`,
  )
}
