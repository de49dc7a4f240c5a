import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DIRECT_READ_MIN_SIZE, DirectReads, mostlyHoles } from '../../src/storage/direct-reads.ts'
import { O_DIRECT } from '../../src/storage/direct-writes.ts'
import { fingerprint, SourceFile } from '../../src/storage/source-file.ts'
import { MiB } from '../../src/types.ts'

describe('direct reads of a mostly sparse file', () => {
  let dir: string
  let sparse: string
  let bytes: Buffer
  // Holes with data here and there, and a tail that ends off a block boundary.
  const SIZE = DIRECT_READ_MIN_SIZE + 5 * MiB + 1234

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'haul-direct-reads-'))
    sparse = join(dir, 'sparse.img')
    const fh = await open(sparse, 'w')
    await fh.truncate(SIZE)
    for (const at of [0, 3 * MiB - 5, 40 * MiB + 4096, SIZE - 3000]) {
      const data = randomBytes(Math.min(300_000, SIZE - at))
      await fh.write(data, 0, data.length, at)
    }
    await fh.close()
    bytes = await readFile(sparse)
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('mostlyHoles: only large files with under half their size allocated', () => {
    expect(mostlyHoles(DIRECT_READ_MIN_SIZE, 0)).toBe(O_DIRECT !== undefined)
    expect(mostlyHoles(DIRECT_READ_MIN_SIZE - 1, 0)).toBe(false)
    expect(mostlyHoles(DIRECT_READ_MIN_SIZE, DIRECT_READ_MIN_SIZE / 512)).toBe(false)
  })

  it('every range reads the same bytes as a buffered read, aligned or not, across slots and at the end', async () => {
    const src = await SourceFile.open(sparse, await fingerprint(sparse))
    // Where the filesystem refuses O_DIRECT (tmpfs) the file is read buffered: same bytes.
    const direct = await DirectReads.open(sparse, await fingerprint(sparse))
    if (direct !== undefined) expect(src.readsDirect).toBe(true)
    await direct?.close()
    try {
      const ranges: Array<[number, number]> = [
        [0, 1 * MiB],
        [0, 3 * MiB + 17],
        [3 * MiB - 4096, 8192],
        [4096 * 3 + 1, 100_000],
        [40 * MiB, 2 * MiB],
        [SIZE - 1234, 1234],
        [SIZE - 1 * MiB - 1234, 1 * MiB + 1234],
        [Math.floor(SIZE / 4096) * 4096 - 8192, SIZE - (Math.floor(SIZE / 4096) * 4096 - 8192)],
      ]
      await Promise.all(
        ranges.map(async ([offset, length]) => {
          const into = new Uint8Array(length + 7).fill(0xee)
          await src.read(offset, length, into)
          expect(Buffer.from(into.subarray(0, length)).equals(bytes.subarray(offset, offset + length))).toBe(
            true,
          )
          expect(into.subarray(length).every((b) => b === 0xee)).toBe(true)
        }),
      )
    } finally {
      await src.close()
    }
  })

  it('a small or fully written file is read buffered', async () => {
    const small = join(dir, 'small.bin')
    await writeFile(small, randomBytes(4096))
    const src = await SourceFile.open(small, await fingerprint(small))
    expect(src.readsDirect).toBe(false)
    await src.close()
  })
})
