import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DescriptorReader } from '../descriptor/reader.ts'
import { derivedName, descriptorFolder, pruneFolder } from '../storage/data-folder.ts'
import { fingerprint, isRacy, SourceFile } from '../storage/source-file.ts'
import type { ChunkingParams } from '../types.ts'
import { type IndexOptions, type IndexResult, indexFile } from './indexer.ts'
import type { PublishedContent } from './registry.ts'

/**
 * Indexes `file` and opens it for serving. Its descriptor goes in the descriptors folder
 * (src/storage/data-folder.ts), named by the file's path, fingerprint and chunking: publishing
 * an unchanged file again opens that descriptor instead of reading the file (see reuseIndex).
 */
export async function indexForServing(
  file: string,
  dataDir: string | undefined,
  opts: Omit<IndexOptions, 'descriptorPath'>,
): Promise<{ index: IndexResult; content: PublishedContent }> {
  const store = await descriptorFolder(dataDir)
  const fp = await fingerprint(file)
  const named = join(
    store,
    derivedName([file, fp.dev, fp.ino, fp.size, fp.mtimeNs, fp.ctimeNs, opts.chunking], '.haul'),
  )
  const reused = await reusableDescriptor(named, fp.size, opts.chunking)
  let index: IndexResult | undefined = reused === undefined ? undefined : { ...reused, fingerprint: fp }
  if (index === undefined) {
    // A racily clean fingerprint (see isRacy) cannot vouch for the bytes later: such a descriptor
    // is not kept under the fingerprint's name, so no later publish reuses it.
    const racy = isRacy(fp)
    const path = racy ? `${named}.${process.pid}.${Math.random().toString(36).slice(2)}.racy` : named
    index = await indexFile(file, { ...opts, descriptorPath: path })
    await pruneFolder(store)
    if (racy) {
      try {
        return { index, content: await openPublished(file, index) }
      } finally {
        // Open readers keep the descriptor; nothing is left behind once serving stops.
        await rm(path, { force: true })
      }
    }
  }
  return { index, content: await openPublished(file, index) }
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

/** Opens what serving an indexed file needs: its descriptor and the file itself, checked unchanged. */
export async function openPublished(file: string, index: IndexResult): Promise<PublishedContent> {
  const reader = await DescriptorReader.open(index.descriptorPath)
  try {
    const source = await SourceFile.open(file, index.fingerprint, index.header.leafCount)
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
