/**
 * The files a load test moves: random bytes, sizes drawn from the run's
 * distribution, each hashed as it is written so that `checkDownloads` can
 * compare downloads with something the engines never computed.
 */
import { createHash, randomFillSync } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import type { ResolvedLoadTestOptions } from './options.ts'

export interface FileSpec {
  path: string
  bytes: number
  /** The process that publishes it. */
  owner: number
  /** SHA-256 of the whole file, hex. */
  sha256: string
}

export async function makeFiles(
  o: ResolvedLoadTestOptions,
  work: string,
  random: () => number,
): Promise<FileSpec[]> {
  const out: FileSpec[] = []
  for (let i = 0; i < o.files; i++) {
    const bytes = drawSize(o, random)
    const owner = o.topology === 'fan-out' ? 0 : i % o.processes
    const path = join(work, `file-${i}.bin`)
    const sha256 = await writeHashedRandomFile(path, bytes)
    out.push({ path, bytes, owner, sha256 })
  }
  return out
}

function drawSize(o: ResolvedLoadTestOptions, random: () => number): number {
  const u = random()
  if (o.distribution === 'uniform') return Math.round(o.minBytes + u * (o.maxBytes - o.minBytes))
  return Math.round(Math.exp(Math.log(o.minBytes) + u * (Math.log(o.maxBytes) - Math.log(o.minBytes))))
}

/** Writes `bytes` of random data to `path` one block at a time; returns their SHA-256 (hex). */
async function writeHashedRandomFile(
  path: string,
  bytes: number,
  blockBytes = 4 * 1024 * 1024,
): Promise<string> {
  const hash = createHash('sha256')
  const fh = await open(path, 'w')
  const block = Buffer.allocUnsafe(Math.max(1, Math.min(blockBytes, bytes)))
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(block.length, bytes - done)
      randomFillSync(block, 0, n)
      hash.update(block.subarray(0, n))
      await fh.write(block, 0, n)
      done += n
    }
  } finally {
    await fh.close()
  }
  return hash.digest('hex')
}
