import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sha256 } from '../../src/merkle/hash.ts'
import type { ChunkingParams, LeafEntry } from '../../src/types.ts'

export const FIXED_64K: ChunkingParams = { kind: 'fixed', size: 64 * 1024 }
export const CDC_SMALL: ChunkingParams = { kind: 'cdc', minSize: 256, avgSize: 1024, maxSize: 4096 }

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
export const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))

function chunkHashFor(i: number): Uint8Array {
  return sha256(new TextEncoder().encode(`chunk ${i}`))
}

/** n rows of a fixed-chunked file whose last chunk is `lastLength` bytes. */
export function fixedEntries(n: number, chunkSize = 64 * 1024, lastLength = 1000): LeafEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    offset: i * chunkSize,
    length: i === n - 1 ? lastLength : chunkSize,
    hash: chunkHashFor(i),
  }))
}

/** n rows valid for CDC_SMALL: lengths in [min, max], the last one short. */
export function cdcEntries(n: number): LeafEntry[] {
  const out: LeafEntry[] = []
  let offset = 0
  for (let i = 0; i < n; i++) {
    const length = i === n - 1 ? 7 : 256 + (((i * 2654435761) >>> 0) % (4096 - 256 + 1))
    out.push({ offset, length, hash: chunkHashFor(i) })
    offset += length
  }
  return out
}

export function sizeOf(entries: readonly LeafEntry[]): number {
  const last = entries[entries.length - 1]
  return last === undefined ? 0 : last.offset + last.length
}

export async function withTmpDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'haul-descriptor-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
