import { statfs } from 'node:fs/promises'

/**
 * Bytes an unprivileged writer may still use on the filesystem holding `path` (statfs: available
 * blocks times block size); undefined where the platform or filesystem cannot tell.
 */
export async function freeBytes(path: string): Promise<number | undefined> {
  const fs = await statfs(path).catch(() => undefined)
  return fs === undefined ? undefined : Number(fs.bavail) * Number(fs.bsize)
}
