import { stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { cidToString } from '../../descriptor/cid.ts'
import { type EngineOptions, resolveEngineConfig } from '../../engine/config.ts'
import { AbortedError, DestinationExistsError, DestinationInvalidError } from '../../errors.ts'
import { assertNotSpecial, entryAt } from '../../storage/safe-open.ts'
import type { ChunkingParams } from '../../types.ts'
import { EXIT } from '../args.ts'
import { formatBytes, formatRate } from '../format.ts'
import type { Output } from '../output.ts'
import { StopSignals } from '../signals.ts'

/** The descriptor's default place: the data folder, named by the file's path and chunking. */
async function defaultDescriptorPath(
  file: string,
  dataDir: string | undefined,
  chunking: ChunkingParams,
): Promise<string> {
  const { derivedName, descriptorFolder } = await import('../../storage/data-folder.ts')
  return join(await descriptorFolder(dataDir), derivedName([resolve(file), chunking], '.index.haul'))
}

/**
 * Refuses `-o <outPath>` before a byte is read or written: the file being indexed itself, however
 * spelled (another path, a hard link, a symbolic link to it), even with --force, since the
 * descriptor's rename would put it in the data's place; anything else already there unless
 * `force` (as `haul get` does). The descriptor is written to a temporary name beside it and
 * renamed into place once whole (DescriptorWriter), so a failed index leaves what was there.
 */
async function checkOut(file: string, outPath: string, force: boolean): Promise<void> {
  // A source that is no file is refused by indexFile before anything is written: that says more.
  const source = await stat(file, { bigint: true }).catch(() => undefined)
  if (source?.isFile() !== true) return
  const there = await entryAt(outPath)
  if (there === undefined) return
  // A folder, device, FIFO or socket: DESTINATION_INVALID, as DescriptorWriter says of it.
  assertNotSpecial(there, outPath)
  const target = await stat(outPath, { bigint: true }).catch(() => undefined)
  if (target?.dev === source.dev && target.ino === source.ino) {
    throw new DestinationInvalidError(
      `-o ${outPath} names ${file} itself: the descriptor would replace the data being indexed; give -o another path (or leave it out: the descriptor then goes in the data folder)`,
    )
  }
  if (!force) {
    throw new DestinationExistsError(
      `-o ${outPath} already exists: pass --force to replace it with the descriptor, or give -o another path`,
    )
  }
}

/**
 * `haul index <file>`: the descriptor only. It loads no libp2p: the network stack alone is
 * ~50 MB of resident memory once imported, which indexing has no use for.
 */
export async function runIndex(
  file: string,
  outPath: string | undefined,
  force: boolean,
  opts: EngineOptions,
  out: Output,
): Promise<number> {
  if (outPath !== undefined) await checkOut(file, outPath, force)
  const { indexFile } = await import('../../serve/indexer.ts')
  const { MemoryBudget } = await import('../../resources/memory-budget.ts')
  const { WorkerPool } = await import('../../workers/pool.ts')
  // The engine's defaults and checks, as `send` and `get` have them.
  const config = resolveEngineConfig(opts)
  const pool = new WorkerPool({ threads: config.workers })
  const budget = new MemoryBudget({ limit: config.memoryBudget })
  const stop = new StopSignals()
  try {
    const r = await indexFile(file, {
      chunking: config.chunking,
      pool,
      budget,
      signal: stop.signal,
      descriptorPath: outPath ?? (await defaultDescriptorPath(file, config.dataDir, config.chunking)),
      // checkOut found nothing at -o: nothing that appears there meanwhile is replaced either.
      replaceDescriptor: outPath === undefined || force,
      onProgress: (done, total) => out.progressBytes('indexing', done, total),
    }).catch((err: unknown) => {
      if (!(stop.stopped && err instanceof AbortedError)) throw err
      return undefined
    })
    out.done()
    if (r === undefined) {
      out.event({ event: 'interrupted', path: file })
      out.human(`interrupted: ${file} was not indexed`)
      return EXIT.interrupted
    }
    const cid = cidToString(r.cid)
    const rate = r.seconds > 0 ? r.bytes / r.seconds : 0
    out.event({
      event: 'indexed',
      cid,
      chunks: r.chunks,
      bytes: r.bytes,
      seconds: r.seconds,
      rate,
      descriptor: r.descriptorPath,
    })
    out.human(
      `content id  ${cid}\nchunks      ${r.chunks}\nsize        ${formatBytes(r.bytes)}\nthroughput  ${formatRate(rate)} (${r.seconds.toFixed(2)} s)\ndescriptor  ${r.descriptorPath}`,
    )
    return EXIT.done
  } finally {
    stop.dispose()
    await pool.destroy()
  }
}
