/**
 * Private temporary folders in os.tmpdir(): a folder fetch's manifest, a content check's
 * descriptor. A process killed with SIGKILL runs no `finally`, so the one it was using stays;
 * each is named `<prefix><pid>-XXXXXX` after the process that made it, and making one removes
 * those of the same prefix whose process is gone. A folder whose process may be alive (a pid
 * that answers, or one this user may not signal) is never touched, nor one of another user.
 */
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A new private folder `<tmpdir>/<prefix><pid>-XXXXXX`, after removing those left by processes gone. */
export async function privateTempDir(prefix: string): Promise<string> {
  await removeStale(prefix)
  return mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`))
}

/** Removes this user's folders `<prefix><pid>-…` in `dir` whose process is gone. Failures are ignored: it is tidying. */
export async function removeStale(prefix: string, dir = tmpdir()): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  const uid = process.getuid?.()
  await Promise.all(
    names.map(async (name) => {
      if (!name.startsWith(prefix)) return
      const pid = /^(\d+)-[^-]+$/.exec(name.slice(prefix.length))?.[1]
      if (pid === undefined || processAlive(Number(pid))) return
      const path = join(dir, name)
      const s = await lstat(path).catch(() => undefined)
      if (s === undefined || !s.isDirectory() || (uid !== undefined && s.uid !== uid)) return
      await rm(path, { recursive: true, force: true }).catch(() => {})
    }),
  )
}

/** Whether process `pid` may be alive: it answers signal 0, or exists and is another user's (EPERM). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}
