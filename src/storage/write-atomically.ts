import { randomBytes } from 'node:crypto'
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises'
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
  const tmp = tempBeside(path)
  try {
    await writeFile(tmp, data, { flush: true, ...(opts.mode === undefined ? {} : { mode: opts.mode }) })
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw fsError(err, path)
  }
}

/**
 * Makes `path` hold `data` (a file named by its own content: a collection's manifest) without
 * ever replacing a file that already holds it: another publish, in this process or another, may
 * be indexing or serving that very file, and a rename over it makes it CONTENT_CHANGED there. The
 * file is written beside it and hard-linked into place, which fails rather than replaces when
 * another writer got there first. Only a file holding other bytes (cut short, damaged) is
 * replaced, and on a filesystem without hard links the file is renamed into place as
 * writeAtomically does. A failure is the haul error fsError makes of it.
 */
export async function writeOnce(path: string, data: Uint8Array): Promise<void> {
  if (await holds(path, data)) return
  const tmp = tempBeside(path)
  try {
    await writeFile(tmp, data, { flush: true })
    const linked = await link(tmp, path).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST' || NO_LINKS.has(err.code ?? '')) return false
        throw err
      },
    )
    if (!linked && !(await holds(path, data))) await rename(tmp, path)
  } catch (err) {
    throw fsError(err, path)
  } finally {
    await unlink(tmp).catch(() => {})
  }
}

/** What link(2) fails with on a filesystem that has no hard links (FAT, some network mounts). */
const NO_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'])

/** True when the file at `path` holds exactly `data`; false when it is missing or holds other bytes. */
async function holds(path: string, data: Uint8Array): Promise<boolean> {
  const now = await readFile(path).catch(() => undefined)
  return now?.equals(data) === true
}

/** A temporary file beside `path`, named for this process (an orphan goes, src/storage/data-folder.ts). */
function tempBeside(path: string): string {
  return `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
}
