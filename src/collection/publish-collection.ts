/**
 * Publishing a collection: walk the paths (walk.ts), index the pack (every file's bytes in
 * manifest order, read in place through PackSource), write the manifest naming the pack's
 * content id, index the manifest, and open both for serving. Derived files (the two
 * descriptors and the manifest) go in the descriptors folder (src/storage/data-folder.ts).
 */
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DescriptorReader } from '../descriptor/reader.ts'
import { ContentChangedError } from '../errors.ts'
import { type IndexOptions, indexFile, indexSource } from '../serve/indexer.ts'
import { openPublished } from '../serve/publish.ts'
import type { PublishedContent } from '../serve/registry.ts'
import { derivedName, pruneFolder } from '../storage/data-folder.ts'
import { fsError } from '../storage/fs-errors.ts'
import { fingerprint, sameFile } from '../storage/source-file.ts'
import { buildManifest, encodeManifest, type Manifest } from './manifest.ts'
import { PackSource } from './pack-source.ts'
import { walkSources } from './walk.ts'

export interface CollectionIndex {
  readonly name: string
  /** The manifest's content id: what a collection ticket names. */
  readonly cid: Uint8Array
  readonly packCid: Uint8Array
  readonly files: number
  readonly folders: number
  readonly links: number
  readonly bytes: number
  /** The pack's chunks. */
  readonly chunks: number
  readonly seconds: number
  /** What was not sent (special files, links leaving the folder), and why. */
  readonly skipped: ReadonlyArray<{ path: string; why: string }>
}

/** Indexes the collection of `paths` and opens its manifest and pack for serving. */
export async function indexCollection(
  paths: readonly string[],
  store: string,
  opts: Omit<IndexOptions, 'descriptorPath'>,
): Promise<{ index: CollectionIndex; contents: PublishedContent[] }> {
  const started = performance.now()
  const walked = await walkSources(paths)
  const files = [...walked.files.values()]
  const key = [paths.join('\0'), files.map((f) => [f.abs, f.fingerprint]), opts.chunking]
  const placed = buildManifest(walked.name, new Uint8Array(32), walked.entries)
  const pack = new PackSource(paths.length === 1 ? paths[0]! : walked.name, placed.entries, walked.files)
  let manifestContent: PublishedContent | undefined
  try {
    const packIndex = await indexSource(pack, {
      ...opts,
      descriptorPath: join(store, derivedName(key, '.pack.haul')),
    })
    // A file changed while the pack was read gives a pack of neither version.
    for (let i = 0; i < files.length; i += 32) {
      await Promise.all(
        files.slice(i, i + 32).map(async (f) => {
          const now = await fingerprint(f.abs).catch(() => undefined)
          if (now === undefined || !sameFile(now, f.fingerprint)) {
            throw new ContentChangedError(
              `${f.abs} changed while the folder was being indexed: publish it again`,
            )
          }
        }),
      )
    }
    pack.indexed(packIndex.chunks)
    const manifest: Manifest = { ...placed, packCid: packIndex.cid }
    const manifestPath = join(store, derivedName(key, '.manifest'))
    await writeAtomically(manifestPath, encodeManifest(manifest))
    const manifestIndex = await indexFile(manifestPath, {
      ...opts,
      onProgress: undefined,
      descriptorPath: join(store, derivedName(key, '.manifest.haul')),
    })
    manifestContent = await openPublished(manifestPath, manifestIndex)
    const reader = await DescriptorReader.open(packIndex.descriptorPath)
    const packContent: PublishedContent = {
      cid: packIndex.cid,
      path: pack.path,
      header: packIndex.header,
      headerBytes: packIndex.headerBytes,
      reader,
      source: pack,
    }
    await pruneFolder(store)
    const count = (k: string) => manifest.entries.filter((e) => e.kind === k).length
    return {
      index: {
        name: manifest.name,
        cid: manifestIndex.cid,
        packCid: packIndex.cid,
        files: manifest.files,
        folders: count('dir'),
        links: count('symlink'),
        bytes: manifest.packSize,
        chunks: packIndex.chunks,
        seconds: (performance.now() - started) / 1000,
        skipped: walked.skipped,
      },
      contents: [manifestContent, packContent],
    }
  } catch (err) {
    await pack.close()
    if (manifestContent !== undefined) {
      await manifestContent.reader.close()
      await manifestContent.source.close()
    }
    throw err
  }
}

async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  try {
    await writeFile(tmp, bytes, { flush: true })
    await rename(tmp, path)
  } catch (err) {
    throw fsError(err, path)
  }
}
