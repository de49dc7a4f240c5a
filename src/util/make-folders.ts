import { mkdir, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'

/**
 * `mkdir -p`: `path` and the folders above it that are missing, each with `mode`; returns the
 * first folder it made (undefined when `path` was there already), as `mkdir(path, { recursive })`
 * does. Node's recursive mkdir never settles under /proc and /sys (each mkdir there fails
 * ENOENT under a parent that exists, and it retries the parent for ever); here that ENOENT is
 * the error. Errors are Node's own (code and path), for the caller to turn into its typed error.
 */
export async function makeFolders(path: string, mode = 0o777): Promise<string | undefined> {
  const target = resolve(path)
  /** Missing folders found on the way up, deepest first. */
  const missing: string[] = []
  let first: string | undefined
  for (let at = target; ; at = dirname(at)) {
    try {
      await mkdir(at, { mode })
      first = at
      break
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') {
        // What is there must be a folder, or a link to one (a file: Node's EEXIST, as mkdir -p).
        if ((await stat(at).catch(() => undefined))?.isDirectory() !== true) throw err
        if (at === target) return undefined
        break
      }
      if (code !== 'ENOENT' || dirname(at) === at) throw err
      missing.push(at)
    }
  }
  for (const at of missing.reverse()) {
    await mkdir(at, { mode }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err
    })
    first ??= at
  }
  return first
}
