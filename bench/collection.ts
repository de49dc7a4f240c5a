/**
 * bench/collection: many small files against one large file of the same bytes, as a user runs
 * them: a `haul send` process serving both, and each `haul get` timed as a whole process
 * (start-up, connection, manifest, pack, cutting the files out, durable on disk). Rounds
 * alternate the two so both see the same machine; the table shows each round and the medians.
 *
 *   npx node bench/collection.ts                     # 10,000 files of 16 KiB against one 160 MB file
 *   HAUL_BENCH_FILES=2000 HAUL_BENCH_KIB=64 ...      # another shape
 *   HAUL_BENCH_EMPTY=100000 ...                      # also: that many empty files (completes? how long?)
 *   HAUL_BENCH_ROUNDS=3 ...
 *
 * Target (issue 20): the small files take at most 2x the time of the one file. Each round also
 * times the folder with --no-fsync (files left to the kernel's writeback, as cp does): the sync
 * of many new files is most of the difference on a slow disk.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MB } from './lib/proc.ts'

const files = Number(process.env.HAUL_BENCH_FILES ?? 10_000)
const fileBytes = Number(process.env.HAUL_BENCH_KIB ?? 16) * 1024
const empties = Number(process.env.HAUL_BENCH_EMPTY ?? 0)
const rounds = Math.max(1, Number(process.env.HAUL_BENCH_ROUNDS ?? 1))
const root = join(tmpdir(), `haul-bench-collection-${files}x${fileBytes}`)
const bin = new URL('../bin/haul.js', import.meta.url).pathname
const total = files * fileBytes

/** The small files in folders of 100 (reused when already there), the one file, the empty files. */
async function prepare(): Promise<void> {
  const marker = join(root, 'ready')
  if ((await stat(marker).catch(() => undefined)) === undefined) {
    await rm(root, { recursive: true, force: true })
    await mkdir(join(root, 'small'), { recursive: true })
    for (let d = 0; d * 100 < files; d++) {
      await mkdir(join(root, 'small', `d${d}`))
      const n = Math.min(100, files - d * 100)
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          writeFile(join(root, 'small', `d${d}`, `f${i}`), randomBytes(fileBytes)),
        ),
      )
    }
    await writeFile(join(root, 'one.bin'), randomBytes(total))
    await writeFile(marker, '')
  }
  if (empties > 0) {
    const dir = join(root, `empty-${empties}`)
    const have = await readdir(dir).catch(() => [] as string[])
    if (have.length !== Math.ceil(empties / 1000)) {
      await rm(dir, { recursive: true, force: true })
      for (let d = 0; d * 1000 < empties; d++) {
        await mkdir(join(dir, `d${d}`), { recursive: true })
        const n = Math.min(1000, empties - d * 1000)
        for (let i = 0; i < n; i += 100) {
          await Promise.all(
            Array.from({ length: Math.min(100, n - i) }, (_, k) =>
              writeFile(join(dir, `d${d}`, `e${i + k}`), ''),
            ),
          )
        }
      }
    }
  }
}

/** Runs `haul <args> --json` and resolves the first event of `type` (the process keeps running). */
function haulUntil(
  args: string[],
  type: string,
): Promise<{ child: ChildProcess; event: Record<string, unknown> }> {
  const child = spawn(process.execPath, [bin, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let buf = ''
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const event = JSON.parse(line) as Record<string, unknown>
        if (event.event === type) resolve({ child, event })
        if (event.event === 'error') reject(new Error(`haul ${args[0]}: ${line}`))
      }
    })
    child.once('exit', (code) => reject(new Error(`haul ${args.join(' ')} exited ${code} before "${type}"`)))
  })
}

/** A whole `haul get` process: seconds from spawn to exit. */
async function timedGet(ticket: string, out: string, flags: string[] = []): Promise<number> {
  await rm(out, { recursive: true, force: true })
  const started = performance.now()
  const { child } = await haulUntil(['get', ticket, '-o', out, ...flags], 'done')
  const code = await new Promise<number | null>((r) => child.once('exit', r))
  const seconds = (performance.now() - started) / 1000
  if (code !== 0) throw new Error(`haul get exited ${code}`)
  await rm(out, { recursive: true, force: true })
  return seconds
}

await prepare()
const data = join(root, 'data')
const sendArgs = (path: string) => ['send', path, '--data-dir', data]
const folder = await haulUntil(sendArgs(join(root, 'small')), 'published')
const one = await haulUntil(sendArgs(join(root, 'one.bin')), 'published')
const emptySender =
  empties > 0 ? await haulUntil(sendArgs(join(root, `empty-${empties}`)), 'published') : undefined
console.log(
  `bench/collection: ${files} files of ${fileBytes / 1024} KiB (${(total / MB).toFixed(0)} MB) against one file of the same size; two processes, 127.0.0.1, whole haul get processes`,
)
const out = join(root, 'out')
const table: Array<{ one: number; many: number; unsynced: number }> = []
try {
  for (let r = 0; r < rounds; r++) {
    const oneS = await timedGet(one.event.ticket as string, out)
    const manyS = await timedGet(folder.event.ticket as string, out)
    const unsyncedS = await timedGet(folder.event.ticket as string, out, ['--no-fsync'])
    table.push({ one: oneS, many: manyS, unsynced: unsyncedS })
    console.log(
      `round ${r + 1}: one file ${oneS.toFixed(2)} s (${(total / MB / oneS).toFixed(0)} MB/s), ${files} files ${manyS.toFixed(2)} s (${(manyS / oneS).toFixed(2)}x), with --no-fsync ${unsyncedS.toFixed(2)} s (${(unsyncedS / oneS).toFixed(2)}x)`,
    )
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const m1 = median(table.map((t) => t.one))
  const mm = median(table.map((t) => t.many))
  const mu = median(table.map((t) => t.unsynced))
  console.log(
    `median: ${(mm / m1).toFixed(2)}x the one file's time, ${(mu / m1).toFixed(2)}x with --no-fsync (target <= 2x; the one file is fsync'd either way)`,
  )
  if (emptySender !== undefined) {
    const s = await timedGet(emptySender.event.ticket as string, out)
    console.log(`${empties} empty files: ${s.toFixed(2)} s, ${(empties / s).toFixed(0)} files/s`)
  }
} finally {
  for (const c of [folder.child, one.child, emptySender?.child]) c?.kill('SIGINT')
}
