/**
 * bench/index: index a generated file with fixed and content-defined chunking,
 * against plain single-threaded node:crypto SHA-256 of the same file measured
 * in the same run. Each measurement runs in its own process (peak RSS per run).
 *
 *   npx node bench/index.ts                 # 1 GiB
 *   HAUL_BENCH_GIB=4 npx node bench/index.ts
 *   HAUL_BENCH_MIB=256 npx node bench/index.ts
 *
 * Targets (issue 2): fixed ≥ 1.0x the SHA-256 rate, CDC ≥ 0.5x; peak RSS < 150 MB and flat in file size.
 */
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureRandomFile, MB, runChild, sizeFromEnv } from './lib/proc.ts'

interface Run {
  mode: string
  bytes: number
  seconds: number
  chunks?: number
  peakRss: number
  idleRss: number
}

const size = sizeFromEnv(1)
const file = process.env.HAUL_BENCH_FILE ?? join(tmpdir(), `haul-bench-${size}.bin`)
const modes = (process.env.HAUL_BENCH_MODES ?? 'fixed:1m,fixed:2m,fixed:4m,cdc').split(',')
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 2)
const child = new URL('./index-child.ts', import.meta.url).pathname

await ensureRandomFile(file, size)
console.log(`bench/index: ${(size / MB).toFixed(0)} MB random file ${file}, best of ${rounds} rounds`)

const best = new Map<string, Run>()
for (let round = 0; round < rounds; round++) {
  // Interleave so drift on a shared machine hits every mode alike.
  for (const mode of ['sha256', ...modes]) {
    const r = await runChild<Run>(child, [mode, file])
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
