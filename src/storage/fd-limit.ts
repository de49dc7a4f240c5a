/**
 * How many files the process may hold open, for the default of `server.maxOpenFiles`: a cache of
 * served files sized past the process's own limit (`ulimit -n` 256 is macOS's default, and a
 * common container setting) fails with EMFILE before it ever evicts.
 */
import { readFileSync } from 'node:fs'

/** The soft limit of open files in `/proc/self/limits` text; undefined when absent or unlimited. */
export function openFilesLimit(limits: string | undefined = procLimits()): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits ?? '')
  if (m === null || m[1] === 'unlimited') return undefined
  return Number(m[1])
}

/**
 * The default of `server.maxOpenFiles`: a quarter of the process's limit (the rest is left to
 * sockets, fetches' files and the embedding application), at most 256 and at least 16.
 */
export function defaultMaxOpenFiles(limit: number | undefined = openFilesLimit()): number {
  return limit === undefined ? 256 : Math.max(16, Math.min(256, Math.floor(limit / 4)))
}

function procLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8')
  } catch {
    return undefined
  }
}
