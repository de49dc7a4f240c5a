import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeManifest, type ManifestEntry } from '../../src/collection/manifest.ts'
import type { Engine } from '../../src/index.ts'
import { decodeSwarmTicket, encodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'

export type Entry = Omit<ManifestEntry, 'offset'>

export const file = (path: string, size = 0, mode = 0o644): Entry => ({ kind: 'file', path, mode, size })
export const dir = (path: string): Entry => ({ kind: 'dir', path, mode: 0o755, size: 0 })
export const link = (path: string, target: string): Entry => ({
  kind: 'symlink',
  path,
  mode: 0o777,
  size: 0,
  target,
})

/**
 * The bytes of a manifest listing `entries` as given: in that order, offsets the running sum of
 * file sizes, nothing checked (encodeManifest does not validate), so a test can write what a
 * hostile sender would.
 */
export function craftManifest(
  entries: readonly Entry[],
  packCid: Uint8Array = new Uint8Array(32),
  name = 'crafted',
): Uint8Array {
  let offset = 0
  const placed = entries.map((e) => {
    const at = offset
    if (e.kind === 'file') offset += e.size
    return { ...e, offset: e.kind === 'file' ? at : 0 }
  })
  return encodeManifest({
    name,
    packCid,
    packSize: offset,
    entries: placed,
    files: placed.filter((e) => e.kind === 'file').length,
  })
}

/**
 * A fake collection sender: `engine` publishes the file at `path` (a crafted manifest, say) as
 * ordinary content, and its ticket is re-encoded as a collection's. Returns the ticket and the
 * content id. Published public: a real collection's pack shares its manifest's secret, and
 * these are published one by one, each of which would get a secret of its own.
 */
export async function publishAsCollection(
  engine: Engine,
  path: string,
): Promise<{ ticket: string; cid: Uint8Array }> {
  const published = decodeSwarmTicket((await engine.publish(path, { public: true })).ticket)
  return { ticket: encodeSwarmTicket({ ...published, kind: 'collection' }), cid: published.cid }
}

/** publishAsCollection of `bytes`, written to `dir`/`name` first. */
export async function serveAsCollection(
  engine: Engine,
  dir: string,
  name: string,
  bytes: Uint8Array,
): Promise<{ ticket: string; cid: Uint8Array }> {
  const path = join(dir, name)
  await writeFile(path, bytes)
  return publishAsCollection(engine, path)
}
