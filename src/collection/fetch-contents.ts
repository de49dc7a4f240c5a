/**
 * The two contents a collection fetch asks the engine's pipeline for (CollectionDeps.fetchContent):
 * the manifest, into a private temporary folder and refused over MAX_MANIFEST_BYTES before a byte
 * of it is written, and the pack, into the staging folder, with files cut out of its verified
 * front while it still arrives (early-cut.ts). What comes before and after them (the destination,
 * the staging folder, the files placed) is fetch-collection.ts.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ManifestInvalidError } from '../errors.ts'
import type { ResumeInfo } from '../fetch/resume.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import { privateTempDir } from '../storage/private-temp.ts'
import type { SwarmTicket } from '../ticket/multi-ticket.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import { type FetchResult, routeOf, type TransferRoute } from '../transfer/transfer-types.ts'
import { EarlyCut } from './early-cut.ts'
import type { CollectionDeps } from './fetch-collection.ts'
import { decodeManifest, MAX_MANIFEST_BYTES, type Manifest } from './manifest.ts'
import { STAGING_NAME } from './names.ts'
import type { stagingPaths } from './unpack.ts'

/** What one content fetch is asked with (CollectionDeps.fetchContent's options). */
type ContentFetchOptions = Parameters<CollectionDeps['fetchContent']>[2]

/** Fetches the manifest into a private temporary folder, decodes and checks it, removes the folder. */
export async function fetchManifest(
  deps: CollectionDeps,
  ticket: SwarmTicket,
  opts: ContentFetchOptions,
): Promise<Manifest> {
  const dir = await privateTempDir('haul-manifest-')
  try {
    const path = join(dir, 'manifest')
    await deps.fetchContent({ ...ticket, kind: 'file' }, path, {
      ...opts,
      // Read once and deleted: its bytes need not reach the disk.
      scratch: true,
      accept: (header) => {
        if (header.totalSize > MAX_MANIFEST_BYTES)
          throw new ManifestInvalidError(
            `the collection's manifest was refused, nothing was written: it is ${header.totalSize} bytes, over ${MAX_MANIFEST_BYTES}`,
          )
      },
    }).result
    return decodeManifest(await readFile(path))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** How the pack is fetched: the caller's signal and limits, and what it is told as the fetch goes. */
export interface PackFetchOptions {
  readonly signal: AbortSignal
  /** The caller's priority, rate and onRetry, passed on as they are. */
  readonly limits: Pick<ContentFetchOptions, 'priority' | 'maxBytesPerSec' | 'onRetry'>
  /** Files cut out early create the collection's symbolic links. */
  readonly symlinks: boolean
  readonly onResume?: ((info: ResumeInfo, p: TransferProgress) => void) | undefined
  readonly onRoute?: ((route: TransferRoute) => void) | undefined
  readonly onProgress: (p: TransferProgress) => void
}

/**
 * Fetches the pack to `<staging>/pack` (its tree of folders made already). Resolves with the
 * pack's fetch and how many files were cut out of it early; the early cut is finished whether
 * the fetch succeeds or fails.
 */
export async function fetchPack(
  deps: CollectionDeps,
  ticket: SwarmTicket,
  manifest: Manifest,
  staging: { readonly folder: DestFolder; readonly paths: ReturnType<typeof stagingPaths> },
  how: PackFetchOptions,
): Promise<{ pack: FetchResult; cutAlready: number }> {
  const { folder, paths } = staging
  let early: EarlyCut | undefined
  let route: TransferRoute | undefined
  const handle = deps.fetchContent(
    { ...ticket, cid: manifest.packCid, kind: 'file' },
    folder.file(`${STAGING_NAME}/pack`),
    {
      signal: how.signal,
      ...how.limits,
      // The pack in the staging folder is haul's own: a complete one left by a crash is kept.
      overwrite: true,
      // Files are cut out of it and it is deleted: its bytes need not reach the disk.
      scratch: true,
      accept: (header) => {
        // The manifest's files add up to its packSize (decodeManifest): another size is not its pack.
        if (header.totalSize !== manifest.packSize) {
          throw new ManifestInvalidError(
            `the collection's manifest was refused, nothing was placed: its files add up to ${manifest.packSize} bytes, but the pack it names holds ${header.totalSize}`,
          )
        }
        // Called again on each retry: the first one stays.
        if (header.chunking.kind !== 'fixed' || early !== undefined) return
        early = new EarlyCut(
          manifest,
          { tree: paths.tree, packPart: `${paths.pack}.part`, stage: paths.stage, shared: paths.shared },
          {
            pool: deps.pool,
            symlinks: how.symlinks,
            chunkSize: header.chunking.size,
            leafCount: header.leafCount,
          },
        )
      },
      onChunk: (i) => early?.chunk(i),
      ...(how.onResume === undefined ? {} : { onResume: how.onResume }),
      onProgress: (p) => {
        const now = routeOf(handle.swarmStats())
        if (now !== undefined && now !== route) {
          route = now
          how.onRoute?.(now)
        }
        how.onProgress(p)
      },
    },
  )
  let pack: FetchResult
  let cutAlready = 0
  try {
    pack = await handle.result
  } finally {
    cutAlready = (await early?.finish()) ?? 0
  }
  return { pack, cutAlready }
}
