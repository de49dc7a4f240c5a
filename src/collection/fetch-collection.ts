/**
 * Fetching a collection: its manifest (a small content fetched into a private temporary folder,
 * capped at MAX_MANIFEST_BYTES before a byte of it is written), every check on it and on the
 * destination (place.ts), then the pack into `<dest>/.haul-incoming/pack` through the one receive
 * pipeline (verified chunk by chunk, resumable with its journal), then the tree cut out of the
 * pack (unpack.ts) and moved into place (place.ts). Running it again after any interruption
 * resumes where it stopped. The two content fetches themselves are fetch-contents.ts.
 */
import { mkdir, readFile, realpath, rmdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DescriptorHeader } from '../descriptor/header.ts'
import {
  AbortedError,
  DestinationBusyError,
  DestinationExistsError,
  DestinationInvalidError,
  isHaulError,
} from '../errors.ts'
import type { ResumeInfo } from '../fetch/resume.ts'
import type { MemoryBudget } from '../resources/memory-budget.ts'
import { DestFolder } from '../storage/dest-folder.ts'
import { DestinationLock } from '../storage/dest-lock.ts'
import { fsError } from '../storage/fs-errors.ts'
import { entryAt, kindOf } from '../storage/safe-open.ts'
import type { SwarmTicket } from '../ticket/multi-ticket.ts'
import type { TransferProgress } from '../transfer/progress.ts'
import type { RetryInfo } from '../transfer/retry.ts'
import type { FetchResult, SwarmStats, TransferRoute } from '../transfer/transfer-types.ts'
import type { ChunkingParams } from '../types.ts'
import { makeFolders } from '../util/make-folders.ts'
import type { WorkerPool } from '../workers/pool.ts'
import { fetchManifest, fetchPack } from './fetch-contents.ts'
import type { Manifest, ManifestEntry } from './manifest.ts'
import { CHANGED_NAME, OWNER_NAME, STAGING_NAME } from './names.ts'
import { checkDestination, checkRoom, moveIntoPlace, refuseFoldedCollisions } from './place.ts'
import { holdsCollection } from './present.ts'
import { seedPack } from './seed-pack.ts'
import { clearStaging, stagedCut } from './staged.ts'
import { cutPack, makeTree, removeStaging, stagingPaths } from './unpack.ts'

/** How often the files already at the destination report what was read of them. */
const READ_REPORT_MS = 250

export interface CollectionProgress {
  /**
   * `manifest`: fetching the list; `reading`: reading the files already at the destination (an
   * overwrite of an earlier copy: what still matches is kept); `fetching`: the pack's bytes;
   * `placing`: files going into place.
   */
  readonly phase: 'manifest' | 'reading' | 'fetching' | 'placing' | 'done'
  readonly files: number
  /** Files under their final names. */
  readonly filesPlaced: number
  /** The collection's bytes (the pack). */
  readonly bytes: number
  /** Verified bytes of the pack, kept from an earlier run included. */
  readonly bytesDone: number
  /**
   * `reading` on: bytes of the files already at the destination read so far (those of the sizes
   * the list gives; at most `bytes`).
   */
  readonly bytesRead?: number
  /** The pack transfer's own figures (rate, ETA) while it runs. */
  readonly transfer?: TransferProgress
}

export interface CollectionFetchOptions {
  signal?: AbortSignal
  onProgress?: (p: CollectionProgress) => void
  /** A file (or link) is now under its final name, verified. */
  onFile?: (entry: { path: string; size: number; kind: ManifestEntry['kind'] }) => void
  onRetry?: (info: RetryInfo) => void
  /**
   * The pack's fetch started from what an earlier run left in the staging folder (its
   * `.haul-incoming/pack.part`): as FetchOptions.onResume.
   */
  onResume?: (info: ResumeInfo, p: TransferProgress) => void
  /** How the pack's providers are reached, as its fetch starts and when that changes (TransferRoute). */
  onRoute?: (route: TransferRoute) => void
  /** Replace files in the destination that hold other data. @default false */
  overwrite?: boolean
  /**
   * When another fetch is writing the destination (DESTINATION_BUSY), wait for it to end, then
   * go on: usually finding the folder there already. @default false
   */
  waitIfBusy?: boolean
  /** With `waitIfBusy`: called once as the waiting begins, with who writes the destination. */
  onWait?: (holder: string) => void
  /** Create the collection's symbolic links (each points inside it); otherwise they are skipped. @default false */
  symlinks?: boolean
  /**
   * Add the collection's files to a folder already at `dest` that is neither an earlier copy of
   * it nor its interrupted fetch. `false` refuses such a folder (DESTINATION_EXISTS): what `haul
   * get` does when the folder's name is the sender's, not the user's, so a ticket cannot add files
   * to `~/.ssh` or `~/bin` under a name of its choosing. @default true
   */
  intoExisting?: boolean
  /**
   * Every file is on stable storage before the fetch ends (one syncfs, or an fsync per file).
   * `false` leaves that to the kernel's writeback, as cp and rsync do: faster for many small
   * files (see bench/collection.ts), and a power cut within ~30 s of the end can lose files the
   * fetch reported (a killed process cannot). @default true
   */
  sync?: boolean
  priority?: 'low' | 'normal' | 'high'
  maxBytesPerSec?: number
}

export interface CollectionResult {
  /** The folder the collection is in. */
  readonly path: string
  readonly name: string
  readonly files: number
  readonly folders: number
  /** Symbolic links created (with `symlinks`) or skipped. */
  readonly links: { readonly created: number; readonly skipped: number }
  readonly bytes: number
  readonly seconds: number
  /** Bytes moved in this run per second (kept bytes do not count). */
  readonly rate: number
  /** The pack's fetch, or undefined when there was nothing to fetch (all files empty, or a resume past it). */
  readonly pack: FetchResult | undefined
  readonly resumed: boolean
  /** The destination already held the collection, byte for byte: nothing was fetched or written. */
  readonly present: boolean
}

/** What a collection fetch needs of the engine. */
export interface CollectionDeps {
  /** The worker pool files are cut out of the pack on (and a present folder is hashed on). */
  readonly pool: WorkerPool
  /** The budget a present folder is hashed within, and how this engine cuts (see present.ts). */
  readonly budget: MemoryBudget
  readonly chunking: ChunkingParams
  /** Starts one content fetch (the engine's pipeline); `accept` sees the header before anything is written. */
  fetchContent(
    ticket: SwarmTicket,
    dest: string,
    opts: {
      signal: AbortSignal
      onProgress?: (p: TransferProgress) => void
      onRetry?: (info: RetryInfo) => void
      onResume?: (info: ResumeInfo, p: TransferProgress) => void
      /** How the pack's providers are reached, as its fetch starts and when that changes (TransferRoute). */
      onRoute?: (route: TransferRoute) => void
      priority?: 'low' | 'normal' | 'high'
      maxBytesPerSec?: number
      overwrite?: boolean
      accept?: (header: DescriptorHeader) => void
      scratch?: boolean
      onChunk?: (index: number) => void
    },
  ): { result: Promise<FetchResult>; swarmStats(): SwarmStats | undefined }
}

/** How often a fetch waiting for a busy destination (waitIfBusy) looks again. */
const BUSY_POLL_MS = 500

export async function fetchCollection(
  deps: CollectionDeps,
  ticket: SwarmTicket,
  dest: string,
  opts: CollectionFetchOptions = {},
): Promise<CollectionResult> {
  const started = performance.now()
  const signal = opts.signal ?? new AbortController().signal
  const limits = {
    ...(opts.priority === undefined ? {} : { priority: opts.priority }),
    ...(opts.maxBytesPerSec === undefined ? {} : { maxBytesPerSec: opts.maxBytesPerSec }),
    ...(opts.onRetry === undefined ? {} : { onRetry: opts.onRetry }),
  }
  let progress: CollectionProgress = { phase: 'manifest', files: 0, filesPlaced: 0, bytes: 0, bytesDone: 0 }
  const report = (p: Partial<CollectionProgress>): void => {
    progress = { ...progress, ...p }
    opts.onProgress?.(progress)
  }
  report({})
  let told = false
  const onWait = (holder: string): void => {
    if (!told) opts.onWait?.(holder)
    told = true
  }
  // A folder another fetch is writing is known before the list of files is fetched: a second
  // fetch into it fails (or waits) at once. Only a look: into() takes the lock, which settles
  // two fetches that start together.
  if ((await entryAt(resolve(dest)))?.isDirectory() === true) {
    await DestinationLock.free(join(resolve(dest), STAGING_NAME, 'collection'), {
      wait: opts.waitIfBusy === true,
      signal,
      pollMs: BUSY_POLL_MS,
      onWait,
    }).catch((err: unknown) => {
      throw err instanceof AbortedError ? new AbortedError('the collection fetch was cancelled') : err
    })
  }
  const manifest = await fetchManifest(deps, ticket, { signal, ...limits }).catch(async (err: unknown) => {
    // An earlier run of this ticket (killed, say) may have left it staged here.
    if (isHaulError(err) && err.code === 'CONTENT_CHANGED' && (await entryAt(resolve(dest)))?.isDirectory()) {
      const stage = join(resolve(dest), STAGING_NAME)
      await noteChanged({ owner: join(stage, OWNER_NAME), changed: join(stage, CHANGED_NAME) }, ticket.cid)
    }
    throw err
  })
  report({ files: manifest.files, bytes: manifest.packSize })

  // With waitIfBusy, a destination another fetch is writing is tried again once that one is done.
  for (;;) {
    try {
      return await into()
    } catch (err) {
      if (!(err instanceof DestinationBusyError) || opts.waitIfBusy !== true) throw err
      onWait(err.holder)
      await sleep(BUSY_POLL_MS, undefined, { signal }).catch(() => {
        throw new AbortedError('the collection fetch was cancelled')
      })
    }
  }

  /** Everything after the manifest: the destination checked, the pack fetched, the files placed. */
  async function into(): Promise<CollectionResult> {
    const root = resolve(dest)
    const there = await entryAt(root)
    if (there?.isSymbolicLink() === true) {
      // Not followed (a link could send the files anywhere), but a link to a folder is named.
      const target = await realpath(root).catch(() => undefined)
      throw new DestinationInvalidError(
        target === undefined
          ? `${root} is a symbolic link: a collection goes into a folder; choose another -o`
          : `${root} is a symbolic link to ${target}: haul does not write through links; give the folder itself (-o ${target})`,
      )
    }
    if (there !== undefined && !there.isDirectory()) {
      throw new DestinationInvalidError(
        `${root} is ${kindOf(there)}: a collection goes into a folder; choose another -o`,
      )
    }
    // The first folder made (undefined when `root` was there already).
    const made = await makeFolders(root).catch((err) => {
      throw fsError(err, root)
    })
    const folder = await DestFolder.pin(join(root, STAGING_NAME))
    const paths = stagingPaths(folder)

    let lock: DestinationLock | undefined
    // Until the pack fetch starts, a failure takes back the folders this call made: a refused
    // fetch leaves nothing. After, the staging folder is what a later call resumes from.
    let preparing = true
    let madeStage = false
    let refused = false
    try {
      // A folder that was there already, with no fetch staged in it, may hold the collection; if it
      // does not, it is added to only when the caller named it (intoExisting).
      if (made === undefined && (await entryAt(paths.stage)) === undefined) {
        if (await holdsCollection(folder, manifest, { ...deps, signal, symlinks: opts.symlinks === true })) {
          report({ phase: 'done', filesPlaced: manifest.files, bytesDone: manifest.packSize })
          return resultOf(manifest, root, started, opts, { pack: undefined, resumed: false, present: true })
        }
        if (opts.intoExisting === false) {
          throw new DestinationExistsError(
            `${root} already exists and is not an earlier copy of this folder: haul adds a folder's files to one already there only when asked to by name (-o ${root}); or fetch it elsewhere with -o <path>`,
          )
        }
      }
      const packHex = Buffer.from(manifest.packCid).toString('hex')
      madeStage = await mkdir(paths.stage, { mode: 0o700 }).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw fsError(err, paths.shared)
          return false
        },
      )
      if (!madeStage) await assertStagingFolder(paths.stage, folder.file(STAGING_NAME))
      lock = await DestinationLock.acquire(folder.file(`${STAGING_NAME}/collection`), { signal })
      // The staging folder says which collection it holds: only that one resumes from it.
      const owner = paths.owner
      const held = await readFile(owner, 'utf8').catch(() => undefined)
      const manifestHex = Buffer.from(ticket.cid).toString('hex')
      const resumed = held === manifestHex
      if (held !== undefined && !resumed) {
        const superseded = (await readFile(paths.changed, 'utf8').catch(() => undefined)) === held
        if (opts.overwrite !== true && !superseded) {
          throw new DestinationExistsError(
            `${root} holds an unfinished fetch of another collection (${STAGING_NAME}): run that fetch again to finish it (if its folder changed since, that run says CONTENT_CHANGED and this one then replaces it), pass --force (overwrite: true) to discard it, or fetch into another folder`,
          )
        }
        await clearStaging(paths)
      }
      if (!resumed) {
        await checkDestination(folder, manifest, {
          overwrite: opts.overwrite === true,
          symlinks: opts.symlinks === true,
        })
        await refuseFoldedCollisions(manifest, paths.stage)
        await checkRoom(folder.path, root, manifest.packSize)
        await writeFile(owner, manifestHex, { flush: true })
      }
      preparing = false

      let pack: FetchResult | undefined
      let cutAlready = 0
      const marker = await stagedCut({
        folder,
        paths,
        manifest,
        packHex,
        manifestHex,
        root,
        overwrite: opts.overwrite === true,
        sync: opts.sync !== false,
        check: { ...deps, signal },
      })
      if (marker === undefined && manifest.packSize > 0) {
        // Over an earlier copy of the folder, the files still as they were are not fetched again.
        const seeding = !resumed && opts.overwrite === true && made === undefined
        if (seeding) report({ phase: 'reading' })
        let readReported = 0
        const seeded = seeding
          ? await seedPack(
              (path) => folder.at(path),
              manifest,
              `${paths.pack}.part`,
              signal,
              (bytesRead) => {
                const now = performance.now()
                if (now - readReported < READ_REPORT_MS) return
                readReported = now
                report({ bytesRead })
              },
            )
          : 0
        if (seeding) report({ bytesRead: seeded })
        report({ phase: 'fetching' })
        await makeTree(paths, manifest)
        const fetched = await fetchPack(
          deps,
          ticket,
          manifest,
          { folder, paths },
          {
            signal,
            limits,
            symlinks: opts.symlinks === true,
            onResume: (info, p) => opts.onResume?.(seeded > 0 ? fromLocalFiles(info) : info, p),
            onRoute: opts.onRoute,
            onProgress: (p) => report({ bytesDone: p.bytesDone, transfer: p }),
          },
        )
        pack = seeded > 0 ? { ...fetched.pack, resume: fromLocalFiles(fetched.pack.resume) } : fetched.pack
        cutAlready = fetched.cutAlready
      }
      report({ phase: 'placing', bytesDone: manifest.packSize })
      let placed = 0
      const placeOpts = {
        overwrite: opts.overwrite === true || resumed,
        symlinks: opts.symlinks === true,
        sync: opts.sync !== false,
        pool: deps.pool,
        signal,
        onPlaced: (e: ManifestEntry) => {
          placed++
          opts.onFile?.({ path: e.path, size: e.size, kind: e.kind })
          if (placed % 256 === 0) report({ filesPlaced: placed })
        },
      }
      await cutPack(paths, manifest, packHex, marker?.next ?? manifest.entries.length, placeOpts, cutAlready)
      await moveIntoPlace(folder, paths, manifest, placeOpts)
      await removeStaging(paths)
      report({ phase: 'done', filesPlaced: manifest.files })
      return resultOf(manifest, root, started, opts, { pack, resumed, present: false })
    } catch (err) {
      if (signal.aborted) throw new AbortedError('the collection fetch was cancelled', { cause: err })
      if (isHaulError(err) && err.code === 'CONTENT_CHANGED' && lock !== undefined)
        await noteChanged(paths, ticket.cid)
      // A pack that is not the manifest's fails the same way every time: nothing is kept for a resume.
      if (isHaulError(err) && err.code === 'MANIFEST_INVALID') refused = true
      throw err
    } finally {
      // Only under the lock: a staging folder another fetch holds is not this one's to remove.
      if (((preparing && madeStage) || refused) && lock !== undefined)
        await removeStaging(paths).catch(() => {})
      await lock?.release()
      await folder.close()
      if ((preparing || refused) && made !== undefined) await removeEmptyFolders(root, made)
    }
  }
}

/** The check of a pack part file seeded from the files already in the destination (seed-pack.ts) says so. */
function fromLocalFiles(info: ResumeInfo): ResumeInfo {
  return info.mode === 'rehash' ? { ...info, reason: 'local-files' } : info
}

/**
 * The collection `cid` changed at its sender (CONTENT_CHANGED): if the staging folder holds its
 * fetch, what was staged stays (another sender of the same collection resumes it), noted so that
 * a fetch of another collection here (the one published again) clears it rather than refusing it
 * as another fetch's. Best effort.
 */
async function noteChanged(paths: { owner: string; changed: string }, cid: Uint8Array): Promise<void> {
  const hex = Buffer.from(cid).toString('hex')
  const stage = dirname(paths.owner)
  if ((await entryAt(stage))?.isDirectory() !== true) return
  if ((await readFile(paths.owner, 'utf8').catch(() => undefined)) !== hex) return
  await writeFile(paths.changed, hex).catch(() => {})
}

/**
 * The staging folder found in the destination must be a folder: haul keeps its work in progress
 * there, and a link (planted, or left by anything) would send the pack and the files elsewhere.
 */
async function assertStagingFolder(at: string, shown: string): Promise<void> {
  const s = await entryAt(at, shown)
  if (s === undefined || s.isDirectory()) return
  throw new DestinationInvalidError(
    `${shown} is ${kindOf(s)}: haul keeps its work in progress there, in a folder of its own, and never follows a link; remove it, then fetch again`,
  )
}

/** Removes `root` and the folders above it up to `first` (those `mkdir -p` made), while they are empty. */
async function removeEmptyFolders(root: string, first: string): Promise<void> {
  for (let at = root; at !== dirname(at); at = dirname(at)) {
    try {
      await rmdir(at)
    } catch {
      return // not empty, or not there: what is in it is not this fetch's
    }
    if (at === first) return
  }
}

function resultOf(
  manifest: Manifest,
  root: string,
  started: number,
  opts: CollectionFetchOptions,
  how: Pick<CollectionResult, 'pack' | 'resumed' | 'present'>,
): CollectionResult {
  const seconds = (performance.now() - started) / 1000
  const moved = how.pack === undefined ? 0 : how.pack.bytes - how.pack.resume.bytesKept
  const links = manifest.entries.filter((e) => e.kind === 'symlink').length
  return {
    path: root,
    name: manifest.name,
    files: manifest.files,
    folders: manifest.entries.filter((e) => e.kind === 'dir').length,
    links: opts.symlinks === true ? { created: links, skipped: 0 } : { created: 0, skipped: links },
    bytes: manifest.packSize,
    seconds,
    rate: seconds > 0 ? moved / seconds : 0,
    ...how,
  }
}
