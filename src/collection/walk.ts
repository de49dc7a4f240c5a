/**
 * What `publish(paths)` sends: the folders and files given, walked without following symbolic
 * links. Each regular file is fingerprinted as it is found (src/storage/source-file.ts), so the
 * pack can refuse a file changed since. Links are kept as links when their target stays inside
 * what is sent (by the receiver's rule, manifest.ts), and skipped (reported) otherwise; sockets,
 * FIFOs and devices are skipped (reported). A name the receiver would refuse (names.ts) is
 * refused here, before any indexing. Haul's own data folder, wherever it is inside, is skipped
 * (reported): its identity key would let anyone holding the ticket pose as this peer.
 */
import type { BigIntStats } from 'node:fs'
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { InvalidArgumentError, SourceInvalidError } from '../errors.ts'
import { sourceError } from '../storage/fs-errors.ts'
import { type FileFingerprint, refuseKernelFiles, wallClockNs } from '../storage/source-file.ts'
import { linkTargetProblem, linkTrie, MAX_ENTRIES, type ManifestEntry } from './manifest.ts'
import { componentProblem, foldedKey, MAX_DEPTH, STAGING_NAME } from './names.ts'

/** A regular file of the collection: where it is here, and how it looked when walked. */
export interface WalkedFile {
  readonly path: string
  readonly abs: string
  readonly fingerprint: FileFingerprint
}

export interface Walked {
  /** The collection's name: the folder's, or for several paths their common folder's. */
  readonly name: string
  readonly entries: Array<Omit<ManifestEntry, 'offset'>>
  /** Regular files by relative path. */
  readonly files: Map<string, WalkedFile>
  /** What was not sent, and why. */
  readonly skipped: Array<{ path: string; why: string }>
}

/** Stats taken at once during a walk: enough to keep a large folder's walk I/O-bound, not queue-bound. */
const STAT_CONCURRENCY = 32

/**
 * Walks `paths`. One folder: the collection is its content, named after it. Several paths (or
 * one file): each is an entry at the top, and the collection is named after their common folder.
 */
export async function walkSources(paths: readonly string[], own: readonly string[] = []): Promise<Walked> {
  if (paths.length === 0) throw new SourceInvalidError('nothing to send: give a folder or files')
  const abs = paths.map((p) => resolve(p))
  const out: Walked = { name: '', entries: [], files: new Map(), skipped: [] }
  const isOwn = await ownFolders(own)
  for (const a of abs) await refuseOwnPath(a, isOwn)
  // Paths given are followed when they are links (as cp -H and tar -H do); links inside are not.
  const first = await statOf(abs[0]!, true)
  if (abs.length === 1 && first.isDirectory()) {
    await walkTree(abs[0]!, '', out, isOwn)
    return { ...keepLinksInside(out), name: nameOf(abs[0]!) }
  }
  const tops = new Set<string>()
  for (const a of abs) {
    const top = basename(a)
    if (tops.has(top))
      throw new InvalidArgumentError(
        `two of the paths given are named "${top}": one collection cannot hold both; send them apart`,
      )
    tops.add(top)
    checkName(top, a)
    const takenNs = wallClockNs()
    const s = await statOf(a, true)
    if (!s.isDirectory()) await refuseKernelFiles(a, 'file')
    if (await addEntry(a, top, s, takenNs, out)) await walkTree(a, top, out, isOwn)
  }
  return { ...keepLinksInside(out), name: nameOf(commonFolder(abs)) }
}

/**
 * Whether a folder is one of `own` (haul's data folder, its descriptor folder), by device and
 * inode, however the path to it is spelled: its identity key and secrets are never sent.
 */
async function ownFolders(own: readonly string[]): Promise<(s: BigIntStats) => boolean> {
  const ids = new Set<string>()
  for (const dir of own) {
    const s = await stat(dir, { bigint: true }).catch(() => undefined)
    if (s?.isDirectory() === true) ids.add(`${s.dev}:${s.ino}`)
  }
  return (s) => s.isDirectory() && ids.has(`${s.dev}:${s.ino}`)
}

const OWN_FOLDER = "haul's own data folder (its identity key, ticket secrets and descriptors)"

/**
 * SOURCE_INVALID when `path` (links followed) is one of haul's own folders (`own`) or inside one:
 * a file or folder of it given to send (its secrets, its identity key) is never sent either.
 */
export async function refuseOwnPath(
  path: string,
  own: readonly string[] | ((s: BigIntStats) => boolean),
): Promise<void> {
  const isOwn = typeof own === 'function' ? own : await ownFolders(own)
  const real = await realpath(path).catch(() => undefined)
  for (let at = real; at !== undefined; ) {
    const s = await stat(at, { bigint: true }).catch(() => undefined)
    if (s !== undefined && isOwn(s)) {
      throw new SourceInvalidError(
        `${path} is ${at === real ? '' : 'inside '}${OWN_FOLDER}: it is never sent`,
      )
    }
    const up = dirname(at)
    at = up === at ? undefined : up
  }
}

async function walkTree(
  root: string,
  prefix: string,
  out: Walked,
  isOwn: (s: BigIntStats) => boolean,
): Promise<void> {
  // Iterative, so a deep tree costs heap, not stack.
  const pending: Array<{ abs: string; rel: string; depth: number }> = [
    { abs: root, rel: prefix, depth: prefix === '' ? 0 : 1 },
  ]
  while (pending.length > 0) {
    const dir = pending.pop()!
    if (dir.depth > MAX_DEPTH) {
      const shown = dir.abs.length > 120 ? `${dir.abs.slice(0, 60)}…${dir.abs.slice(-50)}` : dir.abs
      throw new SourceInvalidError(
        `${shown} is more than ${MAX_DEPTH} folders deep, deeper than a collection keeps: send the folders below it on their own, or pack them first (tar)`,
      )
    }
    await refuseKernelFiles(dir.abs, 'folder')
    const names = await readdir(dir.abs).catch((err) => {
      throw sourceError(err, dir.abs)
    })
    const children = names.map((n) => ({
      name: n,
      // `/` is the one resolved folder that ends in a slash.
      abs: dir.abs.endsWith('/') ? `${dir.abs}${n}` : `${dir.abs}/${n}`,
      rel: dir.rel === '' ? n : `${dir.rel}/${n}`,
    }))
    for (let i = 0; i < children.length; i += STAT_CONCURRENCY) {
      const batch = children.slice(i, i + STAT_CONCURRENCY)
      // Before the stats: a fingerprint's time must not be later than what it saw (isRacy).
      const takenNs = wallClockNs()
      const stats = await Promise.all(batch.map((c) => statOf(c.abs)))
      for (let k = 0; k < batch.length; k++) {
        const c = batch[k]!
        if (foldedKey(c.rel) === STAGING_NAME) {
          out.skipped.push({
            path: c.rel,
            why: 'the staging folder of an unfinished haul get (a reserved name)',
          })
          continue
        }
        if (isOwn(stats[k]!)) {
          out.skipped.push({ path: c.rel, why: `${OWN_FOLDER}, never sent` })
          continue
        }
        checkName(c.name, c.abs)
        if (await addEntry(c.abs, c.rel, stats[k]!, takenNs, out))
          pending.push({ abs: c.abs, rel: c.rel, depth: dir.depth + 1 })
      }
    }
    if (out.entries.length > MAX_ENTRIES)
      throw new SourceInvalidError(`more than ${MAX_ENTRIES} entries: send the folder in parts`)
  }
}

/** Adds one entry; true when it is a folder to walk into. */
async function addEntry(
  abs: string,
  rel: string,
  s: BigIntStats,
  takenNs: bigint,
  out: Walked,
): Promise<boolean> {
  const mode = Number(s.mode & 0o7777n)
  if (s.isDirectory()) {
    out.entries.push({ kind: 'dir', path: rel, mode, size: 0 })
    return true
  }
  if (s.isFile()) {
    const size = Number(s.size)
    out.entries.push({ kind: 'file', path: rel, mode, size })
    out.files.set(rel, {
      path: rel,
      abs,
      fingerprint: { dev: s.dev, ino: s.ino, size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, takenNs },
    })
    return false
  }
  if (s.isSymbolicLink()) {
    const target = await readlink(abs).catch((err) => {
      throw sourceError(err, abs)
    })
    out.entries.push({ kind: 'symlink', path: rel, mode, size: 0, target })
    return false
  }
  out.skipped.push({ path: rel, why: 'not a regular file, folder or link' })
  return false
}

/**
 * The walk with the links a receiver would refuse (manifest.ts, linkTargetProblem) moved to
 * `skipped`. Once every link of the tree is known, since a target may pass through another.
 */
function keepLinksInside(out: Walked): Walked {
  const links = linkTrie(out.entries)
  const entries = out.entries.filter((e) => {
    if (e.kind !== 'symlink') return true
    const why = linkTargetProblem(e.path, e.target ?? '', links)
    if (why !== undefined) out.skipped.push({ path: e.path, why: `a link that ${why}` })
    return why === undefined
  })
  return { ...out, entries }
}

function checkName(name: string, abs: string): void {
  const problem = componentProblem(name)
  if (problem !== undefined)
    throw new SourceInvalidError(
      `${JSON.stringify(abs)} has ${problem} in its name, which no receiver accepts: rename it`,
    )
}

async function statOf(abs: string, follow = false): Promise<BigIntStats> {
  return (follow ? stat : lstat)(abs, { bigint: true }).catch((err) => {
    throw sourceError(err, abs)
  })
}

function nameOf(abs: string): string {
  const n = basename(abs)
  return n === '' || componentProblem(n) !== undefined ? 'haul-collection' : n
}

function commonFolder(abs: readonly string[]): string {
  let common = dirname(abs[0]!)
  for (const a of abs)
    while (!`${a}/`.startsWith(common === '/' ? '/' : `${common}/`)) common = dirname(common)
  return common
}
