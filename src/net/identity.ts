import { randomBytes } from 'node:crypto'
import { link, open, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { ConfigInvalidError, NoSpaceError, PermissionDeniedError } from '../errors.ts'
import { makeFolders } from '../util/make-folders.ts'
import { syncDirBestEffort } from '../util/sync-dir.ts'

export const IDENTITY_FILE = 'identity.key'

/** An Ed25519 key in protobuf form is 68 bytes; anything far larger is not ours. */
const MAX_IDENTITY_BYTES = 4096

/**
 * Loads the node's Ed25519 key from `${dataDir}/identity.key`, creating it on
 * first use. Creation is atomic and race-free: the key is written to a private
 * temp file, fsynced, then hard-linked into place (link fails if another process
 * won the race, and then its key is used), so a crash never leaves a half-written
 * identity and two processes never end up with different ids for one dataDir.
 */
export async function loadOrCreateIdentity(
  dataDir: string,
  opts: { signal?: AbortSignal } = {},
): Promise<PrivateKey> {
  opts.signal?.throwIfAborted()
  const file = join(dataDir, IDENTITY_FILE)
  const existing = await readIdentity(file)
  if (existing !== undefined) return existing

  await makeFolders(dataDir, 0o700).catch((err) => {
    throw fsError(err, `cannot create data directory ${dataDir}`)
  })
  opts.signal?.throwIfAborted()
  const key = await generateKeyPair('Ed25519')
  const tmp = join(dataDir, `.${IDENTITY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(privateKeyToProtobuf(key))
      await fh.sync()
    } finally {
      await fh.close()
    }
    try {
      await link(tmp, file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // Another process created it first: its key is the identity.
      const theirs = await readIdentity(file)
      if (theirs === undefined) throw new ConfigInvalidError(`${file} vanished while being created`)
      return theirs
    }
    await syncDirBestEffort(dataDir)
    return key
  } catch (err) {
    if (err instanceof ConfigInvalidError) throw err
    throw fsError(err, `cannot write identity file ${file}`)
  } finally {
    await unlink(tmp).catch(() => {})
  }
}

async function readIdentity(file: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    const st = await stat(file)
    if (!st.isFile()) throw new ConfigInvalidError(`${file} is not a regular file: move it away`)
    if (st.size > MAX_IDENTITY_BYTES) throw corrupt(file, `it is ${st.size} bytes`)
    const fh = await open(file, 'r')
    try {
      bytes = new Uint8Array(st.size)
      const { bytesRead } = await fh.read(bytes, 0, st.size, 0)
      if (bytesRead !== st.size) throw corrupt(file, 'it changed while being read')
    } finally {
      await fh.close()
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (err instanceof ConfigInvalidError) throw err
    throw fsError(err, `cannot read identity file ${file}`)
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw corrupt(file, 'it is not a protobuf-encoded private key', err)
  }
  if (key.type !== 'Ed25519') throw corrupt(file, `it holds a ${key.type} key, haul uses Ed25519`)
  return key
}

function corrupt(file: string, why: string, cause?: unknown): ConfigInvalidError {
  return new ConfigInvalidError(
    `identity file ${file} is unusable (${why}). Delete ${file} to create a new identity; the peer id will change and old tickets stop working`,
    cause === undefined ? undefined : { cause },
  )
}

function fsError(err: unknown, what: string): Error {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new NoSpaceError(`${what}: no space left (${code}): free some space, or give another --data-dir`, {
      cause: err,
    })
  if (code === 'EACCES' || code === 'EPERM')
    return new PermissionDeniedError(`${what}: permission denied`, { cause: err })
  if (code === 'ENOTDIR' || code === 'EEXIST')
    return new ConfigInvalidError(
      `${what}: the data folder (--data-dir, dataDir) is a file, not a folder (${code}): give a folder`,
      {
        cause: err,
      },
    )
  return new ConfigInvalidError(`${what}: ${(err as Error).message}`, { cause: err })
}
