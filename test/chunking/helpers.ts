import { createCipheriv, createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Deterministic pseudo-random bytes (AES-256-CTR keystream keyed by `seed`), so failures reproduce. */
export function pseudoRandomBytes(length: number, seed: string): Uint8Array {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const out = cipher.update(Buffer.alloc(length))
  return new Uint8Array(out.buffer, out.byteOffset, out.length)
}

/** Seeded test inputs (src/util/random.ts). */
import { mulberry32 as prng } from '../../src/util/random.ts'

export { prng }

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

export interface TempDir {
  readonly dir: string
  file(name: string, bytes: Uint8Array): Promise<string>
  remove(): Promise<void>
}

export async function makeTempDir(): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), 'haul-chunking-'))
  return {
    dir,
    async file(name, bytes) {
      const path = join(dir, name)
      await writeFile(path, bytes)
      return path
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  }
}
