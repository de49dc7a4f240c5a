/**
 * A collection's manifest: what a folder (or several files) is, as one content-addressed blob.
 *
 * A collection moves as two contents. The **pack** is every file's bytes one after another, in
 * manifest order, chunked and hashed like any file (one descriptor, one Merkle root), so ten
 * thousand small files are a few hundred chunks, not ten thousand transfers; a chunk may hold
 * the end of one file and the start of the next. The **manifest** lists the entries (relative
 * path, kind, mode, size; a file's place in the pack is the sum of the sizes before it) and
 * the pack's content id; it is published as a content of its own, and a collection ticket
 * names the manifest's content id. So the ticket commits to the manifest, the manifest to the
 * pack, the pack to every byte: the layout of BitTorrent v1's multi-file torrents, verified
 * with haul's own tree.
 *
 *   8   magic "haulcol" + NUL
 *   u8  format version (1)
 *   u8  name length + the collection's name (UTF-8; the default folder it is fetched into)
 *   32  pack content id
 *   u64 pack size (the sum of the file sizes)
 *   u32 entry count
 *   per entry, in strictly increasing UTF-8 byte order of their paths:
 *     u8  kind (1 file, 2 folder, 3 symbolic link)
 *     u16 mode (permission bits; 0o7777 at most)
 *     u16 path length + path (relative, `/`-separated)
 *     file: u64 size; symbolic link: u16 target length + target
 *
 * Decoding checks everything before anything is written: the bounds below, each path
 * (names.ts), the order (so no duplicates), that every entry's parent folder is listed before
 * it (so no file is also a folder), that sizes add up to the pack, and that a link's target
 * stays inside the tree.
 */
import { ManifestInvalidError } from '../errors.ts'
import { checkedPath, componentProblem, foldedKey } from './names.ts'

export type EntryKind = 'file' | 'dir' | 'symlink'

export interface ManifestEntry {
  readonly kind: EntryKind
  /** Relative, `/`-separated. */
  readonly path: string
  /** Permission bits. */
  readonly mode: number
  /** Bytes (files; 0 otherwise). */
  readonly size: number
  /** Where the file's bytes start in the pack (files; the running sum of sizes before it). */
  readonly offset: number
  /** A symbolic link's target, as the sender's link held it. */
  readonly target?: string
}

export interface Manifest {
  readonly name: string
  readonly packCid: Uint8Array
  readonly packSize: number
  readonly entries: readonly ManifestEntry[]
  /** Files (entries of kind `file`). */
  readonly files: number
}

/** Entries in one manifest. 100,000 empty files are a normal folder; ten million are not. */
export const MAX_ENTRIES = 1_000_000
/** Bytes of one encoded manifest (a million entries of typical path lengths fit). */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024

const MAGIC = new TextEncoder().encode('haulcol\0')
const VERSION = 1
const KIND_CODES: Record<EntryKind, number> = { file: 1, dir: 2, symlink: 3 }
const KINDS: readonly (EntryKind | undefined)[] = [undefined, 'file', 'dir', 'symlink']

const enc = new TextEncoder()

/** Entries as published, in any order: sorted, offsets assigned and checked like a received manifest. */
export function buildManifest(
  name: string,
  packCid: Uint8Array,
  entries: ReadonlyArray<Omit<ManifestEntry, 'offset'>>,
): Manifest {
  const sorted = [...entries].sort((a, b) => Buffer.compare(enc.encode(a.path), enc.encode(b.path)))
  let offset = 0
  const placed = sorted.map((e) => {
    const at = offset
    if (e.kind === 'file') offset += e.size
    return { ...e, offset: e.kind === 'file' ? at : 0 }
  })
  const manifest = { name, packCid, packSize: offset, entries: placed, files: countFiles(placed) }
  checkStructure(manifest)
  return manifest
}

export function encodeManifest(m: Manifest): Uint8Array {
  const name = enc.encode(m.name)
  const parts: Uint8Array[] = []
  let size = MAGIC.length + 1 + 1 + name.length + 32 + 8 + 4
  const head = new Uint8Array(size)
  const hv = new DataView(head.buffer)
  let p = 0
  head.set(MAGIC, p)
  p += MAGIC.length
  head[p++] = VERSION
  head[p++] = name.length
  head.set(name, p)
  p += name.length
  head.set(m.packCid, p)
  p += 32
  hv.setBigUint64(p, BigInt(m.packSize))
  p += 8
  hv.setUint32(p, m.entries.length)
  parts.push(head)
  for (const e of m.entries) {
    const path = enc.encode(e.path)
    const target = e.kind === 'symlink' ? enc.encode(e.target ?? '') : undefined
    const tail = e.kind === 'file' ? 8 : target !== undefined ? 2 + target.length : 0
    const b = new Uint8Array(1 + 2 + 2 + path.length + tail)
    const v = new DataView(b.buffer)
    b[0] = KIND_CODES[e.kind]
    v.setUint16(1, e.mode & 0o7777)
    v.setUint16(3, path.length)
    b.set(path, 5)
    const q = 5 + path.length
    if (e.kind === 'file') v.setBigUint64(q, BigInt(e.size))
    else if (target !== undefined) {
      v.setUint16(q, target.length)
      b.set(target, q + 2)
    }
    parts.push(b)
    size += b.length
  }
  return Buffer.concat(parts, size)
}

/** Decodes and checks a manifest from the network (see the module comment); ManifestInvalidError otherwise. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw invalid(`it is over ${MAX_MANIFEST_BYTES} bytes`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const dec = new TextDecoder('utf-8', { fatal: true })
  let p = 0
  const need = (n: number): void => {
    if (p + n > bytes.length) throw invalid('it is truncated')
  }
  /** `what`: the field, for the refusal (shown with the bad bytes replaced, so it can be found). */
  const text = (n: number, what: string): string => {
    need(n)
    const field = bytes.subarray(p, p + n)
    p += n
    try {
      return dec.decode(field)
    } catch {
      throw invalid(`${what} ${JSON.stringify(new TextDecoder().decode(field))} is not UTF-8`)
    }
  }
  need(MAGIC.length + 2)
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw invalid('it is not a haul manifest')
  p = MAGIC.length
  const version = bytes[p++]
  if (version !== VERSION) throw invalid(`format version ${version} is not known here: upgrade haul`)
  const name = text(bytes[p++]!, 'its name')
  need(32 + 8 + 4)
  // A copy (a Buffer's slice is a view, which would keep the whole manifest's bytes alive with it).
  const packCid = new Uint8Array(bytes.subarray(p, p + 32))
  p += 32
  const packSize = safeNumber(view.getBigUint64(p))
  p += 8
  const count = view.getUint32(p)
  p += 4
  if (count > MAX_ENTRIES) throw invalid(`it lists ${count} entries; at most ${MAX_ENTRIES} are accepted`)
  const entries: ManifestEntry[] = []
  let offset = 0
  for (let i = 0; i < count; i++) {
    need(5)
    const code = bytes[p]!
    const mode = view.getUint16(p + 1)
    const pathLen = view.getUint16(p + 3)
    p += 5
    // The path first (u16, so at most 64 KiB), so that each refusal below names it.
    const path = text(pathLen, `entry ${i}'s path`)
    const kind = KINDS[code]
    if (kind === undefined) throw invalid(`${JSON.stringify(path)} has unknown kind ${code}`)
    if (mode > 0o7777) throw invalid(`${JSON.stringify(path)} has mode ${mode.toString(8)}`)
    if (kind === 'file') {
      need(8)
      const size = safeNumber(view.getBigUint64(p))
      p += 8
      entries.push({ kind, path, mode, size, offset })
      offset += size
      if (offset > Number.MAX_SAFE_INTEGER) throw invalid('its sizes add up past 2^53 bytes')
    } else if (kind === 'symlink') {
      need(2)
      const targetLen = view.getUint16(p)
      p += 2
      const target = text(targetLen, `the link ${JSON.stringify(path)}'s target`)
      entries.push({ kind, path, mode, size: 0, offset: 0, target })
    } else entries.push({ kind, path, mode, size: 0, offset: 0 })
  }
  if (p !== bytes.length) throw invalid('it has bytes after its last entry')
  const m = { name, packCid, packSize, entries, files: countFiles(entries) }
  checkStructure(m)
  return m
}

/**
 * Pairs of paths that are one file on a case-insensitive file system (foldedKey), first of each
 * pair first. Empty for most folders; the fetch refuses a non-empty list only where the
 * destination's file system folds case.
 */
export function foldedCollisions(m: Manifest): Array<[string, string]> {
  const seen = new Map<string, string>()
  const out: Array<[string, string]> = []
  for (const e of m.entries) {
    const key = foldedKey(e.path)
    const first = seen.get(key)
    if (first === undefined) seen.set(key, e.path)
    else out.push([first, e.path])
  }
  return out
}

/** The checks of the module comment, on entries whose lengths and kinds are known good. */
function checkStructure(m: Manifest): void {
  if (componentProblem(m.name) !== undefined)
    throw invalid(`its name ${JSON.stringify(m.name)} is not a file name`)
  if (m.packCid.length !== 32) throw invalid('its pack content id is not 32 bytes')
  if (m.entries.length > MAX_ENTRIES) throw invalid(`it lists over ${MAX_ENTRIES} entries`)
  const folders = new Set<string>()
  const links = linkTrie(m.entries)
  let previous: Uint8Array | undefined
  let total = 0
  for (const e of m.entries) {
    const parts = checkedPath(e.path)
    const bytes = enc.encode(e.path)
    if (previous !== undefined && Buffer.compare(previous, bytes) >= 0) {
      throw invalid(`${JSON.stringify(e.path)} is out of order or listed twice`)
    }
    previous = bytes
    const parent = parts.slice(0, -1).join('/')
    if (parent !== '' && !folders.has(parent)) {
      throw invalid(`${JSON.stringify(e.path)} is not inside a folder listed before it`)
    }
    if (e.kind === 'dir') folders.add(e.path)
    if (e.kind === 'file') {
      if (e.offset !== total) throw invalid(`${JSON.stringify(e.path)} has the wrong place in the pack`)
      total += e.size
    }
    if (e.kind === 'symlink') {
      const why = linkTargetProblem(e.path, e.target ?? '', links)
      if (why !== undefined) throw invalid(`the link ${JSON.stringify(e.path)} ${why}`)
    }
  }
  if (total !== m.packSize) throw invalid(`its files add up to ${total} bytes, not the pack's ${m.packSize}`)
}

/** A tree's links by path component: a target is checked against it in time linear in its length. */
export interface LinkTrie {
  link: boolean
  readonly next: Map<string, LinkTrie>
}

/** The symbolic links among `entries`, as a LinkTrie. */
export function linkTrie(entries: ReadonlyArray<Pick<ManifestEntry, 'kind' | 'path'>>): LinkTrie {
  const root: LinkTrie = { link: false, next: new Map() }
  for (const e of entries) {
    if (e.kind !== 'symlink') continue
    let node = root
    for (const part of e.path.split('/')) {
      let child = node.next.get(part)
      if (child === undefined) node.next.set(part, (child = { link: false, next: new Map() }))
      node = child
    }
    node.link = true
  }
  return root
}

/**
 * Why the link at `path` (`/`-separated) cannot point to `target`, or undefined: the target must
 * be relative and resolve inside the tree from the link's folder, by name, without passing
 * through another link (one of `links`, every link of the tree). The walk by name is what the
 * file system does until a name is a link: past it, the walk goes on in the link's target, which
 * names cannot tell (with `d/up -> ..`, `d/up/..` is the tree's parent, and `d/up/d/up/../..`
 * further up still), so a target whose path goes on past a link is refused. A target that ends
 * at a link is fine: that link's own target is checked too.
 */
export function linkTargetProblem(path: string, target: string, links: LinkTrie): string | undefined {
  if (target === '' || target.startsWith('/') || target.includes('\0')) {
    return `points to ${JSON.stringify(target)}: only relative targets inside the folder are accepted`
  }
  // The names walked so far from the top, and where each is in `links` (undefined: no link below).
  const names = path.split('/').slice(0, -1)
  const nodes: Array<LinkTrie | undefined> = [links]
  for (const name of names) nodes.push(nodes.at(-1)?.next.get(name))
  for (const part of target.split('/')) {
    if (part === '.' || part === '') continue
    if (nodes.at(-1)?.link === true) {
      return `points through the link ${JSON.stringify(names.join('/'))} (${JSON.stringify(target)}): a path that goes on past a link leaves the folder's names, so it is not followed`
    }
    if (part === '..') {
      if (names.length === 0) return `points outside the folder (${JSON.stringify(target)})`
      names.pop()
      nodes.pop()
    } else {
      names.push(part)
      nodes.push(nodes.at(-1)?.next.get(part))
    }
  }
  return undefined
}

function countFiles(entries: readonly ManifestEntry[]): number {
  let n = 0
  for (const e of entries) if (e.kind === 'file') n++
  return n
}

function safeNumber(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('it holds a size past 2^53 bytes')
  return Number(v)
}

function invalid(why: string): ManifestInvalidError {
  return new ManifestInvalidError(`the collection's manifest was refused, nothing was written: ${why}`)
}
