import { cidToString } from '../../descriptor/cid.ts'
import type { EngineOptions } from '../../engine/config.ts'
import type { Engine } from '../../engine/engine.ts'
import { onePath } from '../args.ts'
import { formatBytes } from '../format.ts'
import type { Output } from '../output.ts'
import { type Serving, serveUntilStopped } from './serving.ts'

/** `haul send <file>`: index and publish the file, print its ticket, serve it until stopped. */
export async function runSend(
  paths: readonly string[],
  engineOptions: EngineOptions,
  out: Output,
): Promise<number> {
  const file = onePath(paths, 'send')
  return serveUntilStopped(engineOptions, out, (engine, signal) => publishFile(engine, file, signal, out))
}

/** Indexes (with a progress line) and publishes one whole file. */
export async function publishFile(
  engine: Engine,
  file: string,
  signal: AbortSignal,
  out: Output,
): Promise<Serving> {
  const { ticket, index } = await engine.publish(file, {
    signal,
    onProgress: (done, total) => out.progressBytes('indexing', done, total),
  })
  return {
    ticket,
    intro: `serving ${file} (${formatBytes(index.bytes)}, ${index.chunks} chunks)`,
    event: {
      event: 'published',
      ticket,
      cid: cidToString(index.cid),
      path: file,
      bytes: index.bytes,
      chunks: index.chunks,
      peerId: engine.peerId,
      addresses: engine.addresses,
    },
  }
}
