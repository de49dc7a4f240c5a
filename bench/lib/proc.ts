import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import zlib from 'node:zlib'
import { writeRandomFile } from '../../src/util/random.ts'
import { logLines, textLike } from '../../test/workers/data.ts'

/** Runs a bench child (a .ts file) and returns the JSON object it prints last on stdout. */
export function runChild<T>(script: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? ''
      if (code !== 0) return reject(new Error(`${script} exited ${code}: ${out}`))
      try {
        resolve(JSON.parse(line) as T)
      } catch {
        reject(new Error(`${script} printed no JSON: ${out}`))
      }
    })
  })
}

/** Peak resident set of this process so far, bytes (VmHWM). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024
}

/** A file of `bytes` random bytes (reused if it already has that size). */
export async function ensureRandomFile(path: string, bytes: number): Promise<void> {
  const s = await stat(path).catch(() => undefined)
  if (s?.size !== bytes) await writeRandomFile(path, bytes, 8 * 1024 * 1024)
}

/**
 * The bench file's contents, `HAUL_BENCH_DATA`: `random` (default), `text` (word salad: zstd-1
 * keeps ~0.42 of it, about the least compressible text there is) or `logs` (a service's access
 * log: zstd-1 keeps ~0.19, as of the design brief's text and of source code).
 */
export type BenchData = 'random' | 'text' | 'logs'

export function benchDataFromEnv(): BenchData {
  const d = process.env.HAUL_BENCH_DATA ?? 'random'
  if (d !== 'random' && d !== 'text' && d !== 'logs')
    throw new Error(`HAUL_BENCH_DATA=${d}: random, text or logs`)
  return d
}

/** The bench file for `data` of `bytes` in the temporary folder (reused between runs). */
export function benchFilePath(dir: string, data: BenchData, bytes: number): string {
  return join(dir, `haul-bench-${data === 'random' ? '' : `${data}-`}${bytes}.bin`)
}

/**
 * A file of `bytes` of `data` (reused if it already has that size), at rest: one written less
 * than the racy window (src/storage/source-file.ts, 2 s) before it is indexed is hashed again as
 * it is served, as for a user who sends a file just written; the benches measure the usual case.
 */
export async function ensureDataFile(data: BenchData, path: string, bytes: number): Promise<void> {
  await writeDataFile(data, path, bytes)
  const age = Date.now() - (await stat(path)).mtimeMs
  if (age < 3_000) await new Promise((resolve) => setTimeout(resolve, 3_000 - age))
}

async function writeDataFile(data: BenchData, path: string, bytes: number): Promise<void> {
  if (data === 'random') return ensureRandomFile(path, bytes)
  const s = await stat(path).catch(() => undefined)
  if (s?.size === bytes) return
  const make = data === 'text' ? textLike : logLines
  const fh = await open(path, 'w')
  try {
    const block = 8 * 1024 * 1024
    for (let at = 0, seed = 1; at < bytes; at += block, seed++) {
      const n = Math.min(block, bytes - at)
      await fh.write(make(n, seed), 0, n, at)
    }
  } finally {
    await fh.close()
  }
}

/** How a bench names its file: `random file`, or `logs file (zstd-1 keeps 0.19 of it)`. */
export async function dataLabel(data: BenchData, path: string): Promise<string> {
  return data === 'random'
    ? 'random file'
    : `${data} file (zstd-1 keeps ${(await zstdRatio(path)).toFixed(2)} of it)`
}

/**
 * What zstd-1 keeps of the file's first `sample` bytes, 1 MiB at a time as haul's chunks: printed
 * beside a compressible run so that the data's part in a figure shows.
 */
export async function zstdRatio(path: string, sample = 64 * 1024 * 1024): Promise<number> {
  const fh = await open(path, 'r')
  try {
    const chunk = Buffer.alloc(1024 * 1024)
    const params = { [zlib.constants.ZSTD_c_compressionLevel]: 1 }
    let plain = 0
    let packed = 0
    while (plain < sample) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, plain)
      if (bytesRead === 0) break
      packed += zlib.zstdCompressSync(chunk.subarray(0, bytesRead), { params }).length
      plain += bytesRead
    }
    return plain === 0 ? 1 : packed / plain
  } finally {
    await fh.close()
  }
}

export const MB = 1e6
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export function sizeFromEnv(defaultGiB: number): number {
  if (process.env.HAUL_BENCH_MIB !== undefined) return Number(process.env.HAUL_BENCH_MIB) * MiB
  return Number(process.env.HAUL_BENCH_GIB ?? defaultGiB) * GiB
}

/** A process's CPU seconds so far (user + system, every thread), from /proc; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    // After the command's closing parenthesis utime and stime are the 12th and 13th fields, in
    // clock ticks of 10 ms (USER_HZ 100).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/**
 * Runs a command and samples its peak RSS (VmHWM, which only grows) and its CPU seconds from
 * /proc every 20 ms until it exits; returns its stdout and the last figures seen.
 */
export function runMeasured(
  cmd: string,
  args: string[],
): Promise<{ stdout: string; peakRss: number; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    let peak = 0
    let cpu = 0
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    const timer = setInterval(() => {
      cpu = cpuSecondsOf(child.pid!) ?? cpu
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peak = Math.max(peak, Number(m[1]) * 1024)
      } catch {
        // the process is gone
      }
    }, 20)
    child.once('exit', (code) => {
      clearInterval(timer)
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))
      else resolve({ stdout, peakRss: peak, cpuSeconds: cpu })
    })
  })
}

/** Current and peak resident set from /proc (bytes). */
export function rssNow(): { rss: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

/** Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, so a later peak is this phase's alone. */
export function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5')
}

/** A child's stdout as JSON lines; resolves the first that `pick` accepts. */
export function firstJson<T>(
  child: ChildProcess,
  pick: (o: Record<string, unknown>) => T | undefined,
): Promise<T> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return
      const found = pick(JSON.parse(line) as Record<string, unknown>)
      if (found !== undefined) resolve(found)
    })
    child.once('exit', (code) => reject(new Error(`${child.spawnargs.join(' ')} exited ${code}`)))
  })
}
