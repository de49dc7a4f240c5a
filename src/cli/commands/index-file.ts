import { join, resolve } from 'node:path'
import { cidToString } from '../../descriptor/cid.ts'
import { type EngineOptions, resolveEngineConfig } from '../../engine/config.ts'
import { AbortedError } from '../../errors.ts'
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
 * `haul index <file>`: the descriptor only. It loads no libp2p: the network stack alone is
 * ~50 MB of resident memory once imported, which indexing has no use for.
 */
export async function runIndex(
  file: string,
  outPath: string | undefined,
  opts: EngineOptions,
  out: Output,
): Promise<number> {
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
