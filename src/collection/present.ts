/**
 * Whether a folder (a destination, or a fetch's staging tree) holds a collection, byte for byte:
 * every folder there, every file there with its size (with `symlinks`, every link with its
 * target), and the files' bytes, read in manifest order as a pack, giving the manifest's pack
 * content id. Then nothing is fetched, as a single file already at its destination is not
 * (src/fetch/destination.ts). The pack is cut as this engine cuts (its `chunking`); a sender that
 * cut it otherwise gives another id, and the folder is fetched as usual.
 */
import { lstat, readlink } from 'node:fs/promises'
import { bytesEqual } from '../merkle/hash.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { indexSource, withScratchDescriptor } from '../serve/indexer.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { wallClockNs } from '../storage/source-file.ts'
import type { ChunkingParams } from '../types.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Manifest } from './manifest.ts'
import { PackSource } from './pack-source.ts'
import type { WalkedFile } from './walk.ts'

export async function holdsCollection(
  folder: Pick<DestFolder, 'path' | 'at'>,
  m: Manifest,
  opts: {
    chunking: ChunkingParams
    pool: WorkerPool
    budget: MemoryBudget
    signal: AbortSignal
    /** The fetch makes the collection's links: each must be there, as the collection has it. */
    symlinks?: boolean
  },
): Promise<boolean> {
  const files = new Map<string, WalkedFile>()
  for (const e of m.entries) {
    if (e.kind === 'symlink') {
      if (opts.symlinks === true && (await readlink(folder.at(e.path)).catch(() => undefined)) !== e.target)
        return false
      continue
    }
    const abs = folder.at(e.path)
    const takenNs = wallClockNs()
    const s = await lstat(abs, { bigint: true }).catch(() => undefined)
    if (s === undefined) return false
    if (e.kind === 'dir') {
      if (!s.isDirectory()) return false
      continue
    }
    if (!s.isFile() || Number(s.size) !== e.size) return false
    const fingerprint = {
      dev: s.dev,
      ino: s.ino,
      size: e.size,
      mtimeNs: s.mtimeNs,
      ctimeNs: s.ctimeNs,
      takenNs,
    }
    files.set(e.path, { path: e.path, abs, fingerprint })
  }
  if (m.packSize === 0) return true
  const pack = new PackSource(folder.path, m.entries, files)
  try {
    const r = await withScratchDescriptor((descriptorPath) =>
      indexSource(pack, {
        chunking: opts.chunking,
        pool: opts.pool,
        budget: opts.budget,
        signal: opts.signal,
        descriptorPath,
      }),
    )
    return bytesEqual(r.cid, m.packCid)
  } catch {
    // A file that changed or could not be read while checked: not held.
    return false
  } finally {
    await pack.close()
  }
}
