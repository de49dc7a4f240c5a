import { DescriptorReader } from '../descriptor/reader.ts'
import { SourceFile } from '../storage/source-file.ts'
import type { IndexResult } from './indexer.ts'
import type { PublishedContent } from './registry.ts'

/** Opens what serving an indexed file needs: its descriptor and the file itself, checked unchanged. */
export async function openPublished(file: string, index: IndexResult): Promise<PublishedContent> {
  const reader = await DescriptorReader.open(index.descriptorPath)
  try {
    const source = await SourceFile.open(file, index.fingerprint)
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
