/**
 * bench/index-memory: is a whole `haul index` / `haul get` process's peak RSS flat in the file
 * size? Sparse files (all holes: `truncate -s`) cost no disk, so sizes far beyond the free
 * space can be indexed. Each run is the real CLI (compiled, `npm run build`), started as users
 * start it (its shebang flags apply); peak RSS is VmHWM from /proc, sampled every 20 ms.
 *
 *   npx node bench/index-memory.ts                                   # index 4G,64G,1T; get 4G,32G
 *   HAUL_BENCH_INDEX=4G,16G HAUL_BENCH_GET=4G npx node bench/index-memory.ts
 *   HAUL_BENCH_INDEX= HAUL_BENCH_ROUNDS=3 npx node bench/index-memory.ts   # get only (empty: none)
 *   HAUL_BENCH_DIR=/mnt/big npx node bench/index-memory.ts           # where the files go
 *   HAUL_BENCH_ROUNDS=3 ...                                          # every size 3 times, interleaved
 *
 * `haul get` writes what it receives: its size is bounded by the destination's free space
 * (the part file is checked against it up front), so the largest get is chosen by hand.
 *
 * Target (issue 23): every peak within 1.10x of the 4 GiB run of the same command.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstJson, MB, runMeasured } from './lib/proc.ts'

const haul = new URL('../bin/haul.js', import.meta.url).pathname
const UNITS: Record<string, number> = { M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }

function parseSizes(spec: string): number[] {
  if (spec.trim() === '') return []
  return spec.split(',').map((s) => {
    const m = /^(\d+)([MGT])$/.exec(s.trim())
    if (m === null) throw new Error(`size "${s}": write it as 4G, 512M or 1T`)
    return Number(m[1]) * UNITS[m[2]!]!
  })
}
function label(bytes: number): string {
  for (const [u, n] of [...Object.entries(UNITS)].reverse()) if (bytes % n === 0) return `${bytes / n} ${u}iB`
  return `${bytes} B`
}

interface Run {
  what: 'index' | 'get'
  size: number
  peakRss: number
  seconds: number
  /** Bytes the received file takes on disk (get only). */
  allocated?: number
}

const indexSizes = parseSizes(process.env.HAUL_BENCH_INDEX ?? '4G,64G,1T')
const getSizes = parseSizes(process.env.HAUL_BENCH_GET ?? '4G,32G')
const rounds = Number(process.env.HAUL_BENCH_ROUNDS ?? 1)
const work = await mkdtemp(join(process.env.HAUL_BENCH_DIR ?? tmpdir(), 'haul-index-memory-'))

/** A file of `size` bytes that is one hole (no disk blocks). */
async function sparseFile(size: number): Promise<string> {
  const path = join(work, `sparse-${size}.img`)
  await writeFile(path, '')
  await truncate(path, size)
  return path
}

async function indexRun(size: number): Promise<Run> {
  const file = await sparseFile(size)
  const out = `${file}.haul`
  const started = performance.now()
  const r = await runMeasured(haul, ['index', file, '--json', '--out', out])
  const seconds = (performance.now() - started) / 1000
  const done = r.stdout.split('\n').find((l) => l.includes('"indexed"'))
  if (done === undefined) throw new Error(`haul index ${file} printed no result`)
  await rm(out, { force: true })
  await rm(file, { force: true })
  return { what: 'index', size, peakRss: r.peakRss, seconds }
}

async function getRun(size: number): Promise<Run> {
  const file = await sparseFile(size)
  const sender = spawn(haul, ['send', file, '--json', '--data-dir', join(work, 'data')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const out = join(work, `got-${size}.img`)
  try {
    const ticket = await firstJson(sender, (o) => (o.event === 'published' ? String(o.ticket) : undefined))
    const started = performance.now()
    const r = await runMeasured(haul, ['get', ticket, '-o', out, '--json'])
    const seconds = (performance.now() - started) / 1000
    const s = await stat(out)
    if (s.size !== size) throw new Error(`haul get wrote ${s.size} bytes, expected ${size}`)
    return { what: 'get', size, peakRss: r.peakRss, seconds, allocated: s.blocks * 512 }
  } finally {
    sender.kill('SIGINT')
    await new Promise((resolve) => (sender.exitCode === null ? sender.once('exit', resolve) : resolve(0)))
    await rm(out, { force: true })
    await rm(`${out}.part`, { force: true })
    await rm(file, { force: true })
  }
}

console.log(
  `bench/index-memory: sparse files in ${work}; index ${indexSizes.map(label).join(', ')}; get ${getSizes.map(label).join(', ')}; load average ${loadavg()[0]!.toFixed(1)}`,
)
const runs: Run[] = []
try {
  // Rounds interleave the sizes, so drift on a shared machine hits every size alike.
  for (let round = 1; round <= rounds; round++) {
    for (const size of indexSizes) {
      runs.push(await indexRun(size))
      console.log(`round ${round}: index ${label(size)}: ${(runs.at(-1)!.peakRss / MB).toFixed(1)} MB`)
    }
    for (const size of getSizes) {
      runs.push(await getRun(size))
      console.log(`round ${round}: get ${label(size)}: ${(runs.at(-1)!.peakRss / MB).toFixed(1)} MB`)
    }
  }
} finally {
  await rm(work, { recursive: true, force: true })
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!
const many = rounds > 1
console.log(
  `\n| command | file | peak RSS MB${many ? ' (median; range)' : ''} | ratio vs 4 GiB | seconds | GB/s | disk used MB |`,
)
console.log(`|---|---|---|---|---|---|---|`)
for (const [what, sizes] of [
  ['index', indexSizes],
  ['get', getSizes],
] as const) {
  if (sizes.length === 0) continue
  const these = (size: number) => runs.filter((r) => r.what === what && r.size === size)
  const peak = (size: number) => median(these(size).map((r) => r.peakRss))
  const base = peak(sizes.includes(4 * UNITS.G!) ? 4 * UNITS.G! : sizes[0]!)
  for (const size of sizes) {
    const rs = these(size)
    const peaks = rs.map((r) => r.peakRss)
    const range = many
      ? `; ${(Math.min(...peaks) / MB).toFixed(1)}–${(Math.max(...peaks) / MB).toFixed(1)}`
      : ''
    const seconds = median(rs.map((r) => r.seconds))
    const used = what === 'get' ? (Math.max(...rs.map((r) => r.allocated ?? 0)) / MB).toFixed(0) : '-'
    console.log(
      `| haul ${what} | ${label(size)} | ${(peak(size) / MB).toFixed(1)}${range} | ${(peak(size) / base).toFixed(3)} | ${seconds.toFixed(1)} | ${(size / seconds / 1e9).toFixed(2)} | ${used} |`,
    )
  }
}
console.log(`\nload average at the end ${loadavg()[0]!.toFixed(1)}`)
