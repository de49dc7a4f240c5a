/**
 * The files a load test moves: random bytes, sizes drawn from the run's
 * distribution, each hashed as it is written so that `checkDownloads` can
 * compare downloads with something the engines never computed.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { writeRandomFile } from '../util/random.ts'
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

/** Writes `bytes` of random data to `path`; returns their SHA-256 (hex). */
async function writeHashedRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  await writeRandomFile(path, bytes, undefined, (block) => hash.update(block))
  return hash.digest('hex')
}
