import { createHash } from 'node:crypto'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'

/** Every entry under `root`: kind, mode, and content hash or link target, by relative path. */
export async function treeOf(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name)
      const path = rel === '' ? name : `${rel}/${name}`
      const s = await lstat(abs)
      const mode = (s.mode & 0o7777).toString(8)
      if (s.isDirectory()) {
        out[path] = `dir ${mode}`
        await walk(abs, path)
      } else if (s.isSymbolicLink()) out[path] = `link -> ${await readlink(abs)}`
      else
        out[path] = `file ${mode} ${s.size} ${createHash('sha256')
          .update(await readFile(abs))
          .digest('hex')}`
    }
  }
  await walk(root, '')
  return out
}

/** `n` pseudo-random bytes, the same for the same seed. */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed * 2654435761
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}
