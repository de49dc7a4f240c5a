import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { writeRandomFile } from '../../src/util/random.ts'
import { textLike } from '../../test/workers/data.ts'

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

/** A file of word-salad text (zstd-1 keeps ~0.4 of it): the compressible case. */
export async function ensureTextFile(path: string, bytes: number): Promise<void> {
  const s = await stat(path).catch(() => undefined)
  if (s?.size === bytes) return
  const fh = await open(path, 'w')
  try {
    const block = 8 * 1024 * 1024
    for (let at = 0, seed = 1; at < bytes; at += block, seed++) {
      const n = Math.min(block, bytes - at)
      await fh.write(textLike(n, seed), 0, n, at)
    }
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

/**
 * Runs a command and samples its peak RSS (VmHWM, which only grows) from /proc
 * every 20 ms until it exits; returns its stdout and the last peak seen.
 */
export function runMeasured(cmd: string, args: string[]): Promise<{ stdout: string; peakRss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    let peak = 0
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    const timer = setInterval(() => {
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
      else resolve({ stdout, peakRss: peak })
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
