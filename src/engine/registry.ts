import type { DescriptorHeader } from '../descriptor/header.ts'
import type { DescriptorReader } from '../descriptor/reader.ts'
import type { SourceFile } from '../storage/source-file.ts'

/** What this engine serves: only content ids the application published. */
export interface PublishedContent {
  readonly cid: Uint8Array
  readonly path: string
  readonly header: DescriptorHeader
  readonly headerBytes: Uint8Array
  readonly reader: DescriptorReader
  readonly source: SourceFile
}

export class ContentRegistry {
  readonly #byKey = new Map<string, PublishedContent>()

  add(content: PublishedContent): void {
    const key = keyOf(content.cid)
    const old = this.#byKey.get(key)
    this.#byKey.set(key, content)
    if (old !== undefined && old !== content) void closeContent(old)
  }

  get(cid: Uint8Array): PublishedContent | undefined {
    return this.#byKey.get(keyOf(cid))
  }

  unpublishByKey(key: string): void {
    const c = this.#byKey.get(key)
    if (c === undefined) return
    this.#byKey.delete(key)
    void closeContent(c)
  }

  unpublish(cid: Uint8Array): void {
    this.unpublishByKey(keyOf(cid))
  }

  get size(): number {
    return this.#byKey.size
  }

  async closeAll(): Promise<void> {
    const all = [...this.#byKey.values()]
    this.#byKey.clear()
    await Promise.all(all.map(closeContent))
  }
}

function keyOf(cid: Uint8Array): string {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('hex')
}

async function closeContent(c: PublishedContent): Promise<void> {
  await Promise.allSettled([c.reader.close(), c.source.close()])
}
