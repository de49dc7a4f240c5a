import { randomBytes } from 'node:crypto'
import { rename, unlink, writeFile } from 'node:fs/promises'
import { fsError } from './fs-errors.ts'

/**
 * Writes `data` to `path` whole or not at all: into a temporary file beside it (named for this
 * process, flushed), renamed over `path`; the temporary file is removed when that fails. A
 * failure is the haul error fsError makes of it.
 */
export async function writeAtomically(
  path: string,
  data: Uint8Array | string,
  opts: { readonly mode?: number } = {},
): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, data, { flush: true, ...(opts.mode === undefined ? {} : { mode: opts.mode }) })
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw fsError(err, path)
  }
}
