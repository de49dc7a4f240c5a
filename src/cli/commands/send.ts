import { stat } from 'node:fs/promises'
import { cidToString } from '../../descriptor/cid.ts'
import type { SeedOptions } from '../../engine/api-types.ts'
import type { EngineOptions } from '../../engine/config.ts'
import type { Engine } from '../../engine/engine.ts'
import { InvalidArgumentError } from '../../errors.ts'
import { escapeControls } from '../../util/safe-text.ts'
import { formatBytes, plural } from '../format.ts'
import type { Output } from '../output.ts'
import { type ServedItem, serveUntilStopped } from './serving.ts'

/**
 * `haul send <file>`: index and publish the file, print its ticket, serve it until stopped.
 * `haul send <folder>` or several paths: the same for a collection (src/collection/).
 */
export async function runSend(
  paths: readonly string[],
  access: SeedOptions,
  engineOptions: EngineOptions,
  out: Output,
): Promise<number> {
  if (paths.length === 0) throw new InvalidArgumentError('missing argument: haul send <file | folder>...')
  // A missing path goes the file way, whose error names it (SOURCE_INVALID).
  const oneFile = paths.length === 1 && (await stat(paths[0]!).catch(() => undefined))?.isDirectory() !== true
  return serveUntilStopped(engineOptions, out, (engine, signal) =>
    oneFile
      ? publishFile(engine, paths[0]!, access, signal, out)
      : publishFolder(engine, paths, access, signal, out),
  )
}

/** Indexes (with a progress line) and publishes one whole file. */
export async function publishFile(
  engine: Engine,
  file: string,
  access: SeedOptions,
  signal: AbortSignal,
  out: Output,
): Promise<ServedItem> {
  const { ticket, index, announced } = await engine.publish(file, {
    ...access,
    signal,
    onProgress: (done, total) => out.progressBytes('indexing', done, total),
  })
  return {
    ticket,
    public: access.public === true || announced !== undefined,
    ...(announced === undefined ? {} : { announced: { cid: cidToString(index.cid), reached: announced } }),
    intro: `serving ${escapeControls(file)} (${formatBytes(index.bytes)}, ${plural(index.chunks, 'chunk')}${index.reused ? ', unchanged since it was last published: not read again' : ''})`,
    event: {
      event: 'published',
      ticket,
      cid: cidToString(index.cid),
      path: file,
      bytes: index.bytes,
      chunks: index.chunks,
      reused: index.reused,
      peerId: engine.peerId,
      addresses: engine.addresses,
    },
  }
}

/** Indexes and publishes a folder (or several paths) as one collection; says what it skipped. */
async function publishFolder(
  engine: Engine,
  paths: readonly string[],
  access: SeedOptions,
  signal: AbortSignal,
  out: Output,
): Promise<ServedItem> {
  const { ticket, index } = await engine.publishCollection(paths, {
    ...access,
    signal,
    onProgress: (done, total) => out.progressBytes('indexing', done, total),
  })
  const skipped = index.skipped.map((s) => `\n  skipped ${escapeControls(s.path)}: ${escapeControls(s.why)}`)
  const shown =
    skipped.length > 10 ? [...skipped.slice(0, 10), `\n  … and ${skipped.length - 10} more`] : skipped
  return {
    ticket,
    public: access.public === true,
    intro: `serving folder ${escapeControls(index.name)}: ${plural(index.files, 'file')} in ${plural(index.folders, 'folder')}${index.links > 0 ? `, ${plural(index.links, 'link')}` : ''}, ${formatBytes(index.bytes)} in ${plural(index.chunks, 'chunk')}${index.reused ? ' (unchanged since last published: not read again)' : ''}${shown.join('')}`,
    event: {
      event: 'published',
      kind: 'collection',
      ticket,
      cid: cidToString(index.cid),
      name: index.name,
      paths,
      files: index.files,
      folders: index.folders,
      links: index.links,
      bytes: index.bytes,
      chunks: index.chunks,
      reused: index.reused,
      skipped: index.skipped,
      peerId: engine.peerId,
      addresses: engine.addresses,
    },
  }
}
