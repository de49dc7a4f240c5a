import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { DescriptorReader } from '../descriptor/reader.ts'
import { SourceFile } from '../storage/source-file.ts'
import { type IndexOptions, type IndexResult, indexFile } from './indexer.ts'
import type { PublishedContent } from './registry.ts'

/**
 * Indexes `file` and opens it for serving. With a data folder its descriptor is kept there
 * (see descriptorPathIn); without one, indexFile's default place beside the file.
 */
export async function indexForServing(
  file: string,
  dataDir: string | undefined,
  opts: Omit<IndexOptions, 'descriptorPath'>,
): Promise<{ index: IndexResult; content: PublishedContent }> {
  const index = await indexFile(file, {
    ...opts,
    ...(dataDir === undefined ? {} : { descriptorPath: await descriptorPathIn(dataDir, file) }),
  })
  return { index, content: await openPublished(file, index) }
}

/** Descriptors of published files live in the data folder, named by a hash of the file's path. */
async function descriptorPathIn(dataDir: string, file: string): Promise<string> {
  const dir = resolvePath(dataDir, 'descriptors')
  await mkdir(dir, { recursive: true })
  return resolvePath(dir, `${createHash('sha256').update(file).digest('hex').slice(0, 32)}.haul`)
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
