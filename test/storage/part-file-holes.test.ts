import { randomBytes } from 'node:crypto'
import { open, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DirectWriteSlots } from '../../src/storage/direct-writes.ts'
import { PartFile } from '../../src/storage/part-file.ts'
import { tempDir } from '../support/files.ts'

const MiB = 1024 * 1024
const CHUNK = 1 * MiB
// Chunk 0 random, chunks 1–6 zeros, chunk 7 random, a short zero tail.
const SIZE = 8 * CHUNK + 1000
const expected = Buffer.alloc(SIZE)
const first = randomBytes(CHUNK)
const eighth = randomBytes(CHUNK)
first.copy(expected, 0)
eighth.copy(expected, 7 * CHUNK)

function chunkAt(offset: number): Uint8Array {
  const b = new Uint8Array(Math.min(CHUNK, SIZE - offset))
  b.set(expected.subarray(offset, offset + b.length))
  return b
}

async function writeAll(part: PartFile): Promise<void> {
  for (let offset = 0; offset < SIZE; offset += CHUNK) await part.write(offset, chunkAt(offset))
}

describe('zero chunks stay holes in the part file', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-holes-'))
  })
  afterAll(async () => cleanup())

  for (const direct of [false, true]) {
    it(`a fresh part file${direct ? ' (direct writes)' : ''}: zero chunks are not written, the file is right and sparse`, async () => {
      const dest = join(dir, `fresh-${direct}.img`)
      const part = await PartFile.open(dest, SIZE, direct ? { direct: new DirectWriteSlots(2) } : {})
      await writeAll(part)
      expect(part.holes).toBe(7)
      await part.commit()
      const s = await stat(dest)
      expect(s.size).toBe(SIZE)
      expect((await readFile(dest)).equals(expected)).toBe(true)
      // Two data chunks on disk; the holes take nothing (a little slack for the filesystem).
      expect(s.blocks * 512).toBeLessThanOrEqual(2 * CHUNK + 64 * 1024)
    })
  }

  it('a part file kept from an earlier run: a zero chunk over other bytes is written, over zeros it is not', async () => {
    const dest = join(dir, 'resumed.img')
    // What a crash can leave: the right length, foreign bytes in the range of zero chunk 2.
    const fh = await open(`${dest}.part`, 'w')
    await fh.truncate(SIZE)
    await fh.write(randomBytes(5000), 0, 5000, 2 * CHUNK + 12_345)
    await fh.write(randomBytes(10), 0, 10, SIZE - 10)
    await fh.close()
    const part = await PartFile.open(dest, SIZE)
    await writeAll(part)
    expect(part.holes).toBe(5)
    await part.commit()
    expect((await stat(dest)).size).toBe(SIZE)
    expect((await readFile(dest)).equals(expected)).toBe(true)
  })

  it('a part file emptied on open (discard) skips zero chunks without reading', async () => {
    const dest = join(dir, 'discarded.img')
    await writeFile(`${dest}.part`, randomBytes(SIZE))
    const part = await PartFile.open(dest, SIZE, { discard: true })
    await writeAll(part)
    expect(part.holes).toBe(7)
    await part.commit()
    expect((await readFile(dest)).equals(expected)).toBe(true)
  })
})
