import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DescriptorReader } from '../descriptor/reader.ts'
import { derivedName, descriptorFolder, pin, pruneFolder } from '../storage/data-folder.ts'
import { OpenFiles } from '../storage/open-files.ts'
import { fingerprint, isRacy, SourceFile } from '../storage/source-file.ts'
import type { ChunkingParams } from '../types.ts'
import { type IndexOptions, type IndexResult, indexFile } from './indexer.ts'
import type { PublishedContent } from './registry.ts'

/**
 * Indexes `file` and opens it for serving. Its descriptor goes in the descriptors folder
 * (src/storage/data-folder.ts), named by the file's path, fingerprint and chunking: publishing
 * an unchanged file again opens that descriptor instead of reading the file (see reuseIndex).
 * The descriptor stays pinned there (never pruned) while the content is served, since its reader
 * reopens it on demand; `files` holds the handles.
 */
export async function indexForServing(
  file: string,
  dataDir: string | undefined,
  opts: Omit<IndexOptions, 'descriptorPath'>,
  files: OpenFiles,
): Promise<{ index: IndexResult; content: PublishedContent }> {
  const store = await descriptorFolder(dataDir)
  const fp = await fingerprint(file)
  const named = join(
    store,
    derivedName([file, fp.dev, fp.ino, fp.size, fp.mtimeNs, fp.ctimeNs, opts.chunking], '.haul'),
  )
  // Pinned from before it is looked for: another publish's prune could take it in between.
  let release = servedDescriptor(named, pin(named), false)
  try {
    const reused = await reusableDescriptor(named, fp.size, opts.chunking)
    if (reused !== undefined) {
      const index = { ...reused, fingerprint: fp }
      return { index, content: await openPublished(file, index, files, release) }
    }
    // A racily clean fingerprint (see isRacy) cannot vouch for the bytes later: such a descriptor
    // is not kept under the fingerprint's name, so no later publish reuses it. It is removed once
    // serving stops.
    let path = named
    if (isRacy(fp)) {
      path = `${named}.${process.pid}.${Math.random().toString(36).slice(2)}.racy`
      await release()
      release = servedDescriptor(path, pin(path), true)
    }
    const index = await indexFile(file, { ...opts, descriptorPath: path })
    await pruneFolder(store)
    return { index, content: await openPublished(file, index, files, release) }
  } catch (err) {
    // openPublished has released it if it failed there: releasing twice does nothing more.
    await release()
    throw err
  }
}

/**
 * The descriptor an earlier publish wrote at `path` (named after what it was built from: a
 * file's fingerprint, a pack's files), as an index result; undefined when there is none, or it
 * is not of `size` bytes cut as `chunking` (then the bytes are indexed again).
 */
export async function reusableDescriptor(
  path: string,
  size: number,
  chunking: ChunkingParams,
): Promise<(Omit<IndexResult, 'fingerprint'> & { reused: true }) | undefined> {
  const started = performance.now()
  const reader = await DescriptorReader.open(path).catch(() => undefined)
  if (reader === undefined) return undefined
  try {
    const { header, headerBytes, cid } = reader
    if (header.totalSize !== size || JSON.stringify(header.chunking) !== JSON.stringify(chunking))
      return undefined
    return {
      cid,
      header,
      headerBytes,
      descriptorPath: path,
      chunks: header.leafCount,
      bytes: size,
      seconds: (performance.now() - started) / 1000,
      reused: true,
    }
  } finally {
    await reader.close()
  }
}

/**
 * What becomes of a served descriptor once serving stops (or its opening fails): unpinned (see
 * pin in src/storage/data-folder.ts), and removed when `temporary` (no later publish uses it: a
 * racy one, a manifest's). Idempotent.
 */
export function servedDescriptor(path: string, unpin: () => void, temporary: boolean): () => Promise<void> {
  return async () => {
    unpin()
    if (temporary) await rm(path, { force: true })
  }
}

/**
 * Opens what serving an indexed file needs: its descriptor and the file itself, checked unchanged,
 * their handles kept in `files` (without it, a cache of their own for the two). `release` runs once
 * the content is closed, or here when opening fails (see servedDescriptor).
 */
export async function openPublished(
  file: string,
  index: IndexResult,
  files: OpenFiles = new OpenFiles(2),
  release: () => Promise<void> = async () => {},
): Promise<PublishedContent> {
  let reader: DescriptorReader
  try {
    reader = await DescriptorReader.open(index.descriptorPath, { files, onClose: release })
  } catch (err) {
    await release()
    throw err
  }
  try {
    const source = await SourceFile.open(file, index.fingerprint, index.header.leafCount, files)
    return {
      cid: index.cid,
      path: file,
      header: index.header,
      headerBytes: index.headerBytes,
      reader,
      source,
    }
  } catch (err) {
    await reader.close()
    throw err
  }
}
