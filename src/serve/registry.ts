import type { DescriptorHeader } from '../descriptor/header.ts'
import type { DescriptorPage } from '../descriptor/reader.ts'
import type { LeafEntry } from '../types.ts'
import { admits, admitsUnknown } from './access.ts'
import { MAX_KEPT_PUBLISHED } from './publish-history.ts'

/** Leaf pages and rows of served content (a DescriptorReader, or a partial seeder's verified pages). */
export interface ContentReader {
  readonly pageCount: number
  readPage(pageIndex: number): Promise<DescriptorPage>
  entry(index: number): Promise<LeafEntry>
  close(): Promise<void>
}

/** The bytes of served content (a SourceFile, or a partial seeder's part file). */
export interface ContentSource {
  readonly path: string
  /** Reading alone cannot vouch for the bytes: hash each chunk against its leaf before sending it. */
  readonly needsChunkHash: boolean
  /** A chunk whose read started at `readStartNs` (wall clock) was hashed and matched its leaf. */
  chunkHashed?(index: number, readStartNs: bigint): void
  checkUnchanged(): Promise<void>
  read(offset: number, length: number, into: Uint8Array): Promise<void>
  close(): Promise<void>
}

/** What this engine serves: only content ids the application published (or is fetching, partially). */
export interface PublishedContent {
  readonly cid: Uint8Array
  readonly path: string
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly reader: ContentReader
  readonly source: ContentSource
  /** A partial seeder: which chunks are verified and may be served. Absent: every chunk. */
  readonly holds?: (index: number) => boolean
  /**
   * Who may fetch it: a request must present one of these (src/serve/access.ts). Absent: anyone
   * who names its content id (a public publish, or a partial seed of public content).
   */
  readonly secrets?: readonly Uint8Array[]
}

/** Content ids withdrawn because their source changed that are remembered (see `withdrawChanged`). */
export const MAX_WITHDRAWN = 1024

/**
 * Content ids an earlier run published (its last publish of each path kept in a data folder,
 * at most 2 each: src/serve/publish-history.ts) that a started engine tells CONTENT_PREPARING.
 */
export const MAX_LAST_RUN = 2 * MAX_KEPT_PUBLISHED

/** Whom one publish grants a content: requests presenting one of these secrets (undefined: anyone). */
type Grant = readonly Uint8Array[] | undefined

/** `content` as its grants admit: anyone if one of them is public, else every grant's secrets. */
function grantedBy(content: PublishedContent, grants: ReadonlyMap<string, Grant>): PublishedContent {
  const all = [...grants.values()]
  const { secrets: _, ...rest } = content
  if (all.some((g) => g === undefined)) return rest
  return { ...rest, secrets: all.flatMap((g) => g ?? []) }
}

/** Content not served that a request may still be told of: who may be told (its secrets), and what. */
interface Told {
  readonly secrets: readonly Uint8Array[] | undefined
  readonly why: string
}

export class ContentRegistry {
  readonly #byKey = new Map<string, PublishedContent>()
  /** Per served content id, the publishes that grant it (by their own content id) and to whom. */
  readonly #grants = new Map<string, Map<string, Grant>>()
  /** Withdrawn as changed, oldest first: `why` is what changed. */
  readonly #changed = new Map<string, Told>()
  /**
   * Published before by a file (or folder) being indexed again now (`preparing`): `why` is what
   * is indexed. One entry per publish in progress.
   */
  readonly #preparing = new Map<string, Told>()
  /**
   * Published by an earlier run of this engine, not published again yet (`lastRun`): told
   * CONTENT_PREPARING until performance.now() reaches #lastRunEnds. At most MAX_LAST_RUN.
   */
  readonly #lastRun = new Map<string, Told>()
  #lastRunEnds = Number.NEGATIVE_INFINITY
  /** Reading what the earlier runs published, while it is under way (see lastRunRead). */
  #lastRunReading: Promise<void> | undefined

  /**
   * Serves `content` as `owner`'s publish grants it (owner: the content id its ticket names; a
   * folder's pack is granted by its manifest). One content id can be granted by several
   * publishes (a file, and a folder holding only that file, share it): each keeps its own
   * secret, and a public grant makes it public, until that publish is withdrawn (`unpublish`).
   */
  add(content: PublishedContent, owner: Uint8Array = content.cid): void {
    const key = contentKey(content.cid)
    const old = this.#byKey.get(key)
    const grants = (old === undefined ? undefined : this.#grants.get(key)) ?? new Map<string, Grant>()
    grants.set(contentKey(owner), content.secrets)
    this.#grants.set(key, grants)
    this.#changed.delete(key)
    this.#lastRun.delete(key)
    this.#byKey.set(key, grantedBy(content, grants))
    if (old !== undefined && old.reader !== content.reader) void closeContent(old)
  }

  /** Adds `content` unless its content id is already served (a full copy wins over a partial one). */
  addIfAbsent(content: PublishedContent): boolean {
    const key = contentKey(content.cid)
    if (this.#byKey.has(key)) return false
    this.#byKey.set(key, content)
    this.#grants.set(key, new Map([[key, content.secrets]]))
    return true
  }

  /** Stops serving `content` if it is still what its content id maps to. */
  removeIfSame(content: PublishedContent): void {
    const key = contentKey(content.cid)
    if (this.#byKey.get(key) === content) this.unpublishByKey(key)
  }

  /**
   * The content `cid` names, if a request presenting `secret` may have it: public content to
   * anyone, the rest only with one of its secrets. Unknown content and a missing or wrong secret
   * give the same undefined, after the same comparison (src/serve/access.ts), so serving answers
   * them alike.
   */
  granted(cid: Uint8Array, secret: Uint8Array | undefined): PublishedContent | undefined {
    const content = this.#byKey.get(contentKey(cid))
    if (content === undefined) {
      admitsUnknown(secret)
      return undefined
    }
    return admits(content.secrets, secret) ? content : undefined
  }

  /** Stops serving the content under `key`; returns it, or undefined if none was. */
  unpublishByKey(key: string): PublishedContent | undefined {
    const c = this.#byKey.get(key)
    if (c === undefined) return undefined
    this.#byKey.delete(key)
    this.#grants.delete(key)
    void closeContent(c)
    return c
  }

  /**
   * Withdraws what `owner`'s publish granted of `cid` (the application revokes it), and stops
   * telling of `cid` as published by an earlier run. `cid` is no longer served once no publish
   * grants it; until then requests presenting the other publishes' secrets still get it.
   */
  unpublish(cid: Uint8Array, owner: Uint8Array = cid): void {
    const key = contentKey(cid)
    this.#lastRun.delete(key)
    const served = this.#byKey.get(key)
    const grants = this.#grants.get(key)
    if (served === undefined || grants === undefined) return
    grants.delete(contentKey(owner))
    if (grants.size === 0) this.unpublishByKey(key)
    else this.#byKey.set(key, grantedBy(served, grants))
  }

  /**
   * Stops serving `cid` because its source changed (`why`), and remembers it: a later request
   * that may have had it is told CONTENT_CHANGED (`changedFor`), not that it is unknown, which a
   * fetch that saw the content takes for a sender restarting and retries for minutes. The last
   * MAX_WITHDRAWN are remembered, until published again.
   */
  withdrawChanged(cid: Uint8Array, why: string): PublishedContent | undefined {
    const key = contentKey(cid)
    const gone = this.unpublishByKey(key)
    if (gone === undefined) return undefined
    this.#rememberChanged(key, gone.secrets, why)
    return gone
  }

  /**
   * Remembers `cid` as withdrawn for a change (`why`), as withdrawChanged does, when it is not
   * served: a sender started again finds the file it publishes changed since it served `cid`
   * (src/serve/publish-history.ts). `secrets` are those it was served with (undefined: public).
   * Content still served is left alone: serving it finds the change itself.
   */
  rememberChanged(cid: Uint8Array, secrets: readonly Uint8Array[] | undefined, why: string): void {
    const key = contentKey(cid)
    if (!this.#byKey.has(key)) this.#rememberChanged(key, secrets, why)
  }

  #rememberChanged(key: string, secrets: readonly Uint8Array[] | undefined, why: string): void {
    this.#lastRun.delete(key)
    this.#changed.delete(key)
    this.#changed.set(key, { secrets, why })
    if (this.#changed.size > MAX_WITHDRAWN) this.#changed.delete(this.#changed.keys().next().value!)
  }

  /**
   * Why `cid` was withdrawn, if it was for a change and a request presenting `secret` could have
   * had it; undefined otherwise, after the same comparison as for unknown content.
   */
  changedFor(cid: Uint8Array, secret: Uint8Array | undefined): string | undefined {
    return toldOf(this.#changed.get(contentKey(cid)), secret)
  }

  /**
   * While `cid` is not served, a request that could have had it is told CONTENT_PREPARING
   * (`preparingFor`): its file (`what`, what a sender restarted on it published last) is being
   * indexed again. Returns what ends that, once the publish is done or failed.
   */
  preparing(cid: Uint8Array, secrets: readonly Uint8Array[] | undefined, what: string): () => void {
    const key = contentKey(cid)
    const entry = {
      secrets,
      why: `the sender is indexing ${what} again before it serves it (it was restarted): asking again`,
    }
    this.#preparing.set(key, entry)
    return () => {
      if (this.#preparing.get(key) === entry) this.#preparing.delete(key)
    }
  }

  /**
   * Starts telling what an earlier run of this engine published (`lastRun`, added while
   * `reading` runs) CONTENT_PREPARING, for `ms` from now: the application has not published it
   * again yet, a moment after its engine started. A fetch told that asks again; told the content
   * is unknown, one that never saw it gives up at once.
   */
  beginLastRun(ms: number, reading: Promise<void>): void {
    this.#lastRunEnds = performance.now() + ms
    const settled = reading.catch(() => {})
    this.#lastRunReading = settled
    void settled.then(() => {
      if (this.#lastRunReading === settled) this.#lastRunReading = undefined
    })
  }

  /**
   * `cid` was published by an earlier run, to requests presenting one of `secrets` (undefined:
   * to anyone): told CONTENT_PREPARING until beginLastRun's time is up, unless it is served,
   * withdrawn as changed (CONTENT_CHANGED says more), or unpublished meanwhile.
   */
  lastRun(cid: Uint8Array, secrets: readonly Uint8Array[] | undefined): void {
    const key = contentKey(cid)
    if (this.#byKey.has(key) || this.#changed.has(key) || this.#lastRun.size >= MAX_LAST_RUN) return
    this.#lastRun.set(key, {
      secrets,
      why: 'the sender was restarted and has not published this content again yet: asking again',
    })
  }

  /**
   * Settles once what earlier runs published is read (at once when it is, or there is none): a
   * request for content not served waits for it, so it is not told the content is unknown a
   * moment before it would have been told to ask again. Every such request waits alike, whatever
   * it names, so how long it waited tells nothing of the content id.
   */
  lastRunRead(): Promise<void> | undefined {
    return this.#lastRunReading
  }

  /**
   * Why `cid` is not served yet (see `preparing` and `lastRun`), if a request presenting `secret`
   * could have had it; undefined otherwise, after the same comparison as for unknown content.
   */
  preparingFor(cid: Uint8Array, secret: Uint8Array | undefined): string | undefined {
    if (this.#lastRun.size > 0 && performance.now() >= this.#lastRunEnds) this.#lastRun.clear()
    const key = contentKey(cid)
    return toldOf(this.#preparing.get(key) ?? this.#lastRun.get(key), secret)
  }

  get size(): number {
    return this.#byKey.size
  }

  async closeAll(): Promise<void> {
    const all = [...this.#byKey.values()]
    this.#byKey.clear()
    this.#grants.clear()
    await Promise.all(all.map(closeContent))
  }
}

/** The content id in hex: how the serving side keys a content (the registry, the chunk cache, the upload order). */
export function contentKey(cid: Uint8Array): string {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('hex')
}

async function closeContent(c: PublishedContent): Promise<void> {
  await Promise.allSettled([c.reader.close(), c.source.close()])
}

/**
 * What `told` says to a request presenting `secret`, if it could have had the content;
 * undefined otherwise, after the same comparison as for unknown content (`told` undefined).
 */
function toldOf(told: Told | undefined, secret: Uint8Array | undefined): string | undefined {
  if (told === undefined) {
    admitsUnknown(secret)
    return undefined
  }
  return admits(told.secrets, secret) ? told.why : undefined
}
