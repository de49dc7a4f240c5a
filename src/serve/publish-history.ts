import { readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { derivedName, pruneFolder } from '../storage/data-folder.ts'
import { writeAtomically } from '../storage/write-atomically.ts'
import { makeFolders } from '../util/make-folders.ts'

/** Records kept in a data folder; beyond this the least recently written go. */
export const MAX_KEPT_PUBLISHED = 4096

/** Earlier publishes of one path remembered beside its last (a file changed several times while stopped). */
export const MAX_EARLIER_PUBLISHES = 8

/** Records read at once when all are read (everyLast): enough to keep the disk busy, few open files. */
const READS_AT_ONCE = 16

/** What a path (a file, or a collection's paths) published. */
export interface LastPublished {
  /** What its ticket names first (a collection's manifest), then what else it served (its pack). */
  readonly cids: readonly Uint8Array[]
  /** Published without a secret: anyone naming a content id could have had it. */
  readonly public: boolean
}

/** A path's record: what it publishes now, and what it published before, newest first. */
interface Record {
  readonly now: LastPublished
  readonly earlier: readonly LastPublished[]
}

/**
 * What each path published, kept in a data folder, so a sender started again on a file that
 * changed in between knows the content ids the new one replaces (their old tickets are told
 * CONTENT_CHANGED, not that the content is unknown, which a receiver retries for minutes).
 *
 * One small file per path and chunking in `<dataDir>/published/`, named by a hash of them (a
 * content id depends on both; another chunking of an unchanged file is not a change), holding
 * the content ids in hex and whether the publish was public, for the last publish and up to
 * MAX_EARLIER_PUBLISHES before it; no secret. At most MAX_KEPT_PUBLISHED files, least recently
 * written out: a path whose record went is published as new. Without a data folder nothing is
 * kept: a new identity and new secrets reach no old ticket.
 */
export class PublishHistory {
  readonly #dir: string | undefined

  constructor(dataDir: string | undefined) {
    this.#dir = dataDir === undefined ? undefined : resolve(dataDir, 'published')
  }

  /** What `key` (the path and chunking) published last, if it is recorded. */
  async last(key: readonly unknown[]): Promise<LastPublished | undefined> {
    if (this.#dir === undefined) return undefined
    return (await readRecord(join(this.#dir, derivedName(key, '.json'))))?.now
  }

  /**
   * What every recorded path published last (at most MAX_KEPT_PUBLISHED, READS_AT_ONCE read at a
   * time), each handed to `each` as it is read; records that cannot be read are passed over.
   */
  async everyLast(each: (p: LastPublished) => Promise<void>): Promise<void> {
    const dir = this.#dir
    if (dir === undefined) return
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'))
    const left = names.slice(0, MAX_KEPT_PUBLISHED)
    const reader = async (): Promise<void> => {
      for (let name = left.pop(); name !== undefined; name = left.pop()) {
        const record = await readRecord(join(dir, name))
        if (record !== undefined) await each(record.now)
      }
    }
    await Promise.all(Array.from({ length: READS_AT_ONCE }, reader))
  }

  /**
   * Records that `key` (the path and chunking) now publishes `now`, and returns what it published
   * before under other content ids, newest first; empty when there was nothing else, or the record
   * cannot be read or written (it only improves an answer, so it never fails a publish).
   */
  async replace(key: readonly unknown[], now: LastPublished): Promise<LastPublished[]> {
    const dir = this.#dir
    if (dir === undefined) return []
    const file = join(dir, derivedName(key, '.json'))
    const before = await readRecord(file)
    const other = (p: LastPublished): boolean => !Buffer.from(p.cids[0]!).equals(now.cids[0]!)
    const earlier = before === undefined ? [] : [before.now, ...before.earlier].filter(other)
    try {
      await makeFolders(dir, 0o700)
      await writeAtomically(file, encodeRecord({ now, earlier: earlier.slice(0, MAX_EARLIER_PUBLISHES) }), {
        mode: 0o600,
      })
      await pruneFolder(dir, MAX_KEPT_PUBLISHED)
    } catch {
      // Only an answer to old tickets is lost: the publish goes on.
    }
    return earlier
  }
}

function encodePublish(p: LastPublished): { cids: string[]; public: boolean } {
  return { cids: p.cids.map((c) => Buffer.from(c).toString('hex')), public: p.public }
}

function encodeRecord(r: Record): string {
  return JSON.stringify({ ...encodePublish(r.now), earlier: r.earlier.map(encodePublish) })
}

function decodePublish(r: unknown): LastPublished | undefined {
  if (typeof r !== 'object' || r === null) return undefined
  const { cids, public: isPublic } = r as { cids?: unknown; public?: unknown }
  if (!Array.isArray(cids) || cids.length === 0 || cids.length > 2 || typeof isPublic !== 'boolean')
    return undefined
  if (!cids.every((c) => typeof c === 'string' && /^([0-9a-f]{2})+$/.test(c))) return undefined
  return { cids: cids.map((c: string) => new Uint8Array(Buffer.from(c, 'hex'))), public: isPublic }
}

/** The record in `file`; undefined when there is none or it is not one (then it is rewritten). */
async function readRecord(file: string): Promise<Record | undefined> {
  try {
    const r: unknown = JSON.parse(await readFile(file, 'utf8'))
    const now = decodePublish(r)
    if (now === undefined) return undefined
    const listed = (r as { earlier?: unknown }).earlier
    const earlier = Array.isArray(listed) ? listed.slice(0, MAX_EARLIER_PUBLISHES).map(decodePublish) : []
    return { now, earlier: earlier.filter((p) => p !== undefined) }
  } catch {
    return undefined
  }
}
