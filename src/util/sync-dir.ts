import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

/** fsync a folder: makes a rename or a new entry in it durable. Rejects with the fs error. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** {@link syncDir} where a folder that cannot be opened or synced (some filesystems refuse) is not fatal. */
export async function syncDirBestEffort(dir: string): Promise<void> {
  await syncDir(dir).catch(() => {})
}
