/**
 * What an earlier run of a folder fetch left in the staging folder (`<dest>/.haul-incoming`), and
 * what of it still counts before anything is fetched: the cut marker (unpack.ts) says how far the
 * pack was cut into the staging tree; a tree cut whole but not synced counts once it hashes to the
 * pack again; files already moved into the destination count only as they were placed.
 */
import { readdir, rm, writeFile } from 'node:fs/promises'
import { DestinationExistsError } from '../errors.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import type { DestFolder } from '../storage/dest-folder.ts'
import type { ChunkingParams } from '../types.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { Manifest } from './manifest.ts'
import { placedDamage } from './place.ts'
import { holdsCollection } from './present.ts'
import { type CutMarker, readMarker, type stagingPaths, syncTree } from './unpack.ts'

type StagingPaths = ReturnType<typeof stagingPaths>

export interface StagedRun {
  readonly folder: DestFolder
  readonly paths: StagingPaths
  readonly manifest: Manifest
  /** The pack's content id (hex), as the marker names it. */
  readonly packHex: string
  /** The manifest's content id (hex): the staging folder's owner once it is cleared. */
  readonly manifestHex: string
  /** The destination as the user named it (for messages). */
  readonly root: string
  readonly overwrite: boolean
  readonly sync: boolean
  /** What re-hashing the staging tree takes. */
  readonly check: { chunking: ChunkingParams; pool: WorkerPool; budget: MemoryBudget; signal: AbortSignal }
}

/**
 * The marker of what an earlier run cut, once what it vouches for is checked; undefined when the
 * pack must be fetched (again), the staging folder then cleared of that run's work. Throws
 * DestinationExistsError when files the earlier run placed were deleted or edited since and
 * `overwrite` is not set.
 */
export async function stagedCut(run: StagedRun): Promise<CutMarker | undefined> {
  const { paths, manifest } = run
  let marker = await readMarker(paths.marker, run.packHex)
  if (marker?.synced === false) {
    // Every file was cut out and the pack deleted, the files not synced yet: they count if
    // they still hash to the pack, else the pack is fetched again.
    const tree = { path: paths.tree, at: (name: string) => `${paths.tree}/${name}` }
    if (await holdsCollection(tree, manifest, run.check)) {
      await syncTree(paths, manifest, run.packHex, { sync: run.sync })
      return { next: 0, synced: true }
    }
    await restart(run)
    return undefined
  }
  if (marker?.next === 0) {
    // Interrupted while moving files into place: those it moved are in the destination now,
    // where they may have been deleted or edited since. None is trusted unless it is as placed.
    const damaged = await placedDamage(run.folder, paths, manifest)
    if (damaged.length > 0 && !run.overwrite) {
      throw new DestinationExistsError(
        `${damaged.length} of the files the interrupted fetch had placed in ${run.root} are missing or changed since (the first: ${damaged[0]}): pass --force (overwrite: true) to fetch the folder again and replace them`,
      )
    }
    if (damaged.length > 0) {
      await restart(run)
      marker = undefined
    }
  }
  return marker
}

/** Empties the staging folder of an earlier run's work and names this collection its owner. */
async function restart(run: StagedRun): Promise<void> {
  await clearStaging(run.paths)
  await writeFile(run.paths.owner, run.manifestHex, { flush: true })
}

/** Empties a staging folder of another collection's work, keeping this fetch's lock file. */
export async function clearStaging(paths: StagingPaths): Promise<void> {
  for (const name of await readdir(paths.stage)) {
    if (name.startsWith('collection.')) continue
    await rm(`${paths.stage}/${name}`, { recursive: true, force: true })
  }
}
