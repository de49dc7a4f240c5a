import { createHash } from 'node:crypto'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Everything about a folder tree a write, truncation, rename or unlink would change: per entry
 * its kind, inode, size, mode, modification time, and its bytes' SHA-256 (files) or target
 * (links). Two equal states mean nothing under the folder was touched.
 */
export async function treeState(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name)
      const key = rel === '' ? name : `${rel}/${name}`
      const s = await lstat(path)
      const head = `ino ${s.ino} size ${s.size} mode ${s.mode.toString(8)} mtime ${s.mtimeMs} rdev ${s.rdev}`
      if (s.isDirectory()) {
        out[key] = `dir ${head}`
        await walk(path, key)
      } else if (s.isSymbolicLink()) out[key] = `link -> ${await readlink(path)} ${head}`
      else if (s.isFile())
        out[key] = `file ${head} sha ${createHash('sha256')
          .update(await readFile(path))
          .digest('hex')}`
      else out[key] = `special ${head}`
    }
  }
  await walk(root, '')
  return out
}
