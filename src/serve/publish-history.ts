import { randomBytes } from 'node:crypto'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { derivedName, pruneFolder } from '../storage/data-folder.ts'
import { makeFolders } from '../util/make-folders.ts'

/** Records kept in a data folder; beyond this the least recently written go. */
export const MAX_KEPT_PUBLISHED = 4096

/** What a path (a file, or a collection's paths) last published. */
export interface LastPublished {
  /** What its ticket names first (a collection's manifest), then what else it served (its pack). */
  readonly cids: readonly Uint8Array[]
  /** Published without a secret: anyone naming a content id could have had it. */
  readonly public: boolean
}

/**
 * What each path published last, kept in a data folder, so a sender started again on a file
 * that changed in between knows the content id the new one replaces (its old tickets are told
 * CONTENT_CHANGED, not that the content is unknown, which a receiver retries for minutes).
 *
 * One small file per path and chunking in `<dataDir>/published/`, named by a hash of them (a
 * content id depends on both; another chunking of an unchanged file is not a change), holding
 * the content ids in hex and whether the publish was public; no secret. At most
 * MAX_KEPT_PUBLISHED, least recently written out: a path whose record went is published as new.
 * Without a data folder nothing is kept: a new identity and new secrets reach no old ticket.
 */
export class PublishHistory {
  readonly #dir: string | undefined

  constructor(dataDir: string | undefined) {
    this.#dir = dataDir === undefined ? undefined : resolve(dataDir, 'published')
  }

  /**
   * Records that `key` (the path and chunking) now publishes `now`, and returns what it published
   * before when its ticket's content id differs; undefined when it is the same, there was none,
   * or the record cannot be read or written (it only improves an answer, so it never fails a
   * publish).
   */
  async replace(key: readonly unknown[], now: LastPublished): Promise<LastPublished | undefined> {
    const dir = this.#dir
    if (dir === undefined) return undefined
    const file = join(dir, derivedName(key, '.json'))
    const before = await readRecord(file)
    const tmp = join(dir, `.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      await makeFolders(dir, 0o700)
      await writeFile(tmp, encodeRecord(now), { mode: 0o600 })
      await rename(tmp, file)
      await pruneFolder(dir, MAX_KEPT_PUBLISHED)
    } catch {
      await unlink(tmp).catch(() => {})
    }
    if (before === undefined || Buffer.from(before.cids[0]!).equals(now.cids[0]!)) return undefined
    return before
  }
}

function encodeRecord(r: LastPublished): string {
  return JSON.stringify({ cids: r.cids.map((c) => Buffer.from(c).toString('hex')), public: r.public })
}

/** The record in `file`; undefined when there is none or it is not one (then it is rewritten). */
async function readRecord(file: string): Promise<LastPublished | undefined> {
  try {
    const r: unknown = JSON.parse(await readFile(file, 'utf8'))
    if (typeof r !== 'object' || r === null) return undefined
    const { cids, public: isPublic } = r as { cids?: unknown; public?: unknown }
    if (!Array.isArray(cids) || cids.length === 0 || cids.length > 2 || typeof isPublic !== 'boolean')
      return undefined
    if (!cids.every((c) => typeof c === 'string' && /^([0-9a-f]{2})+$/.test(c))) return undefined
    return { cids: cids.map((c: string) => new Uint8Array(Buffer.from(c, 'hex'))), public: isPublic }
  } catch {
    return undefined
  }
}
