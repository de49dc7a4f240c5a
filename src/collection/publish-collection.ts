/**
 * Publishing a collection: walk the paths (walk.ts), index the pack (every file's bytes in
 * manifest order, read in place through PackSource), write the manifest naming the pack's
 * content id, index the manifest, and open both for serving. Derived files (the two
 * descriptors and the manifest) go in the descriptors folder (src/storage/data-folder.ts).
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { DescriptorReader } from '../descriptor/reader.ts'
import { ContentChangedError } from '../errors.ts'
import { type IndexOptions, indexFile, indexSource } from '../serve/indexer.ts'
import { openPublished, reusableDescriptor, servedDescriptor } from '../serve/publish.ts'
import type { PublishedContent } from '../serve/registry.ts'
import { derivedName, pin, pruneFolder } from '../storage/data-folder.ts'
import type { OpenFiles } from '../storage/open-files.ts'
import { isRacy, sameFile, stateAt } from '../storage/source-file.ts'
import { writeOnce } from '../storage/write-atomically.ts'
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
  /** The pack's descriptor from an earlier publish of these unchanged files was used: no file was read. */
  readonly reused: boolean
}

/**
 * Indexes the collection of `paths` and opens its manifest and pack for serving, their handles
 * kept in `openFiles`. The two descriptors stay pinned in `store` while served (see
 * indexForServing), and the temporary ones go once serving stops. `own`: haul's folders the
 * walk skips wherever they are inside (the data folder, `store`).
 */
export async function indexCollection(
  paths: readonly string[],
  store: string,
  opts: Omit<IndexOptions, 'descriptorPath'>,
  openFiles?: OpenFiles,
  own: readonly string[] = [store],
): Promise<{ index: CollectionIndex; contents: PublishedContent[] }> {
  const started = performance.now()
  const walked = await walkSources(paths, own)
  const files = [...walked.files.values()]
  const placed = buildManifest(walked.name, new Uint8Array(32), walked.entries)
  // What the derived files depend on: the entries as walked and each file's fingerprint.
  const key = [
    paths.join('\0'),
    placed.entries.map((e) => [e.kind, e.path, e.mode, e.size, e.target ?? '']),
    files.map(({ abs, fingerprint: f }) => [abs, f.dev, f.ino, f.size, f.mtimeNs, f.ctimeNs]),
    opts.chunking,
  ]
  // A racily clean file (see isRacy) cannot vouch for its bytes later: then the derived files get
  // names of their own, no later publish reuses them, and they go once serving stops.
  const racy = files.some((f) => isRacy(f.fingerprint))
  const suffix = racy ? `.${process.pid}.${Math.random().toString(36).slice(2)}.racy` : ''
  const named = (ext: string) => join(store, derivedName(key, ext) + suffix)
  const pack = new PackSource(
    paths.length === 1 ? paths[0]! : walked.name,
    placed.entries,
    walked.files,
    openFiles,
  )
  let manifestContent: PublishedContent | undefined
  let packReader: DescriptorReader | undefined
  const packDescriptor = named('.pack.haul')
  // A racy pack descriptor (see above) goes once serving stops.
  const releasePack = servedDescriptor(packDescriptor, pin(packDescriptor), racy)
  try {
    const packIndex =
      (racy ? undefined : await reusableDescriptor(packDescriptor, placed.packSize, opts.chunking)) ??
      (await indexSource(pack, { ...opts, descriptorPath: packDescriptor }))
    // A file changed while the pack was read gives a pack of neither version.
    for (let i = 0; i < files.length; i += 32) {
      await Promise.all(
        files.slice(i, i + 32).map(async (f) => {
          const now = await stateAt(f.abs).catch(() => undefined)
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
    // Named by its own bytes: the same manifest is one file, written once and never replaced
    // while another publish (of this engine or another on this data folder) indexes or serves it.
    const bytes = encodeManifest(manifest)
    const manifestPath = join(
      store,
      `${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}.manifest`,
    )
    await writeOnce(manifestPath, bytes)
    const manifestDescriptor = `${manifestPath}.${process.pid}.${Math.random().toString(36).slice(2)}.haul`
    // Its descriptor is rebuilt in milliseconds each time: it goes once serving stops.
    const releaseManifest = servedDescriptor(manifestDescriptor, pin(manifestDescriptor), true)
    const manifestIndex = await indexFile(manifestPath, {
      ...opts,
      onProgress: undefined,
      descriptorPath: manifestDescriptor,
    }).catch(async (err) => {
      await releaseManifest()
      throw err
    })
    // Named for what it is where serving shows it (haul send's lines), not by its file in the store.
    manifestContent = {
      ...(await openPublished(manifestPath, manifestIndex, openFiles, releaseManifest)),
      path: `${pack.path} (list of files)`,
    }
    packReader = await DescriptorReader.open(packIndex.descriptorPath, {
      ...(openFiles === undefined ? {} : { files: openFiles }),
      onClose: releasePack,
    })
    const reader = packReader
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
        reused: packIndex.reused,
      },
      contents: [manifestContent, packContent],
    }
  } catch (err) {
    // The pack reader's close releases its descriptor; without one it is released here.
    await packReader?.close()
    await releasePack()
    await pack.close()
    if (manifestContent !== undefined) {
      await manifestContent.reader.close()
      await manifestContent.source.close()
    }
    throw err
  }
}
