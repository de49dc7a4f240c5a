import { randomBytes } from 'node:crypto'
import { link, readFile, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pruneFolder } from '../storage/data-folder.ts'
import { fsError } from '../storage/fs-errors.ts'
import { makeFolders } from '../util/make-folders.ts'
import { newSecret, SECRET_BYTES } from './access.ts'

/** Secrets kept in a data folder; beyond this the least recently used go. */
export const MAX_KEPT_SECRETS = 4096

/**
 * The secrets this engine's publishes made, by content id. A content id published again keeps
 * the secret its tickets carry, so they keep working: in this engine, and with a data folder in
 * the next one (a restarted sender answers its old ticket). `forget` (unpublish) drops it, so
 * the next publish makes a new one and the old tickets fetch nothing: that is how a ticket is
 * revoked.
 *
 * With a data folder they are kept in `<dataDir>/secrets/<content id in hex>`, 16 bytes, mode
 * 0600, like identity.key: whoever reads them can fetch what they guard. Each is written to a
 * private temp file and hard-linked into place, so a crash never leaves half a secret and two
 * processes on one folder end up with the same one.
 */
export class SecretStore {
  readonly #dir: string | undefined
  /** Per content id (hex), its secret as loaded or made; one load at a time per id. */
  readonly #byCid = new Map<string, Promise<Uint8Array>>()
  /** Per content id (hex), the removal of its kept secret under way: a load waits for it. */
  readonly #removing = new Map<string, Promise<void>>()

  constructor(dataDir: string | undefined) {
    this.#dir = dataDir === undefined ? undefined : resolve(dataDir, 'secrets')
  }

  /** The secret of `cid`: the one kept, or a new one, kept from now on. */
  secretOf(cid: Uint8Array): Promise<Uint8Array> {
    const key = Buffer.from(cid).toString('hex')
    let secret = this.#byCid.get(key)
    if (secret === undefined) {
      const loading = this.#load(key)
      secret = loading
      this.#byCid.set(key, loading)
      loading.catch(() => {
        if (this.#byCid.get(key) === loading) this.#byCid.delete(key)
      })
    }
    return secret
  }

  /**
   * The secret `cid` has, if it has one (loaded, or kept in the data folder); none is made.
   * Undefined when it has none, or it cannot be read.
   */
  async kept(cid: Uint8Array): Promise<Uint8Array | undefined> {
    const key = Buffer.from(cid).toString('hex')
    const loaded = this.#byCid.get(key)
    if (loaded !== undefined) return loaded.catch(() => undefined)
    if (this.#dir === undefined) return undefined
    await this.#removing.get(key)
    return readSecret(join(this.#dir, key)).catch(() => undefined)
  }

  /**
   * Drops `cid`'s secret (here and in the data folder): its next publish makes a new one, even
   * one started before the file is gone.
   */
  async forget(cid: Uint8Array): Promise<void> {
    const key = Buffer.from(cid).toString('hex')
    this.#byCid.delete(key)
    if (this.#dir === undefined) return
    const removing = rm(join(this.#dir, key), { force: true }).catch(() => {})
    this.#removing.set(key, removing)
    await removing
    if (this.#removing.get(key) === removing) this.#removing.delete(key)
  }

  async #load(key: string): Promise<Uint8Array> {
    const dir = this.#dir
    if (dir === undefined) return newSecret()
    await this.#removing.get(key)
    const file = join(dir, key)
    const kept = await readSecret(file)
    if (kept !== undefined) {
      // Used again: the last to be pruned.
      const now = new Date()
      await utimes(file, now, now).catch(() => {})
      return kept
    }
    const secret = newSecret()
    const tmp = join(dir, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      await makeFolders(dir, 0o700)
      await writeFile(tmp, secret, { mode: 0o600, flag: 'wx', flush: true })
      try {
        await link(tmp, file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // Another process made it first: its secret is the one. A damaged one is replaced.
        const theirs = await readSecret(file)
        if (theirs !== undefined) return theirs
        await rename(tmp, file)
      }
    } catch (err) {
      throw fsError(err, file)
    } finally {
      await unlink(tmp).catch(() => {})
    }
    await pruneFolder(dir, MAX_KEPT_SECRETS)
    return secret
  }
}

/** The secret kept in `file`; undefined when there is none, or not one of SECRET_BYTES. */
async function readSecret(file: string): Promise<Uint8Array | undefined> {
  try {
    const bytes = await readFile(file)
    return bytes.length === SECRET_BYTES ? new Uint8Array(bytes) : undefined
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fsError(err, file)
  }
}
