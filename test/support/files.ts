import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type Content = 'random' | 'text'

/** Writes `size` bytes of random or compressible data, 4 MiB at a time. */
export async function writeFile(path: string, size: number, content: Content, seed = 1): Promise<void> {
  const fh = await open(path, 'w')
  const block = Buffer.allocUnsafe(Math.min(size, 4 * 1024 * 1024) || 1)
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(block.length, size - done)
      if (content === 'random') randomFillSync(block, 0, n)
      else block.fill(`line ${seed}:${done} the quick brown fox jumps over the lazy dog\n`, 0, n)
      await fh.write(block, 0, n)
      done += n
    }
  } finally {
    await fh.close()
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer)
  return h.digest('hex')
}

export async function tempDir(prefix = 'haul-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}
