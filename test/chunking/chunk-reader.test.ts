import { appendFile, open, truncate } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ChunkSlice,
  readCdcChunks,
  readFixedChunks,
  readRange,
} from '../../src/chunking/chunk-reader.ts'
import { cdcCuts } from '../../src/chunking/fastcdc.ts'
import type { CdcSizes } from '../../src/chunking/params.ts'
import { AbortedError, ContentChangedError, InvalidArgumentError } from '../../src/errors.ts'
import { KiB, MiB } from '../../src/types.ts'
import { makeTempDir, pseudoRandomBytes, type TempDir } from './helpers.ts'

const CDC: CdcSizes = { minSize: 256 * KiB, avgSize: 1 * MiB, maxSize: 4 * MiB }
const SMALL: CdcSizes = { minSize: 64 * KiB, avgSize: 128 * KiB, maxSize: 512 * KiB }

let tmp: TempDir
let big: Uint8Array
let bigPath: string

beforeAll(async () => {
  tmp = await makeTempDir()
  big = pseudoRandomBytes(64 * MiB, 'chunk-reader-64m')
  bigPath = await tmp.file('big.bin', big)
})
afterAll(() => tmp.remove())

interface Collected {
  slices: { index: number; offset: number; length: number }[]
  joined: Uint8Array
  buffers: Set<ArrayBufferLike>
}

/** Drains a reader, copying each chunk to its offset, checking the slices tile the file in order. */
async function collect(
  gen: AsyncGenerator<ChunkSlice>,
  size: number,
  onSlice?: (s: ChunkSlice) => void,
): Promise<Collected> {
  const joined = new Uint8Array(size)
  const slices: Collected['slices'] = []
  const buffers = new Set<ArrayBufferLike>()
  let next = 0
  for await (const s of gen) {
    expect(s.index).toBe(slices.length)
    expect(s.offset).toBe(next)
    expect(s.bytes.length).toBe(s.length)
    joined.set(s.bytes, s.offset)
    buffers.add(s.bytes.buffer)
    slices.push({ index: s.index, offset: s.offset, length: s.length })
    next += s.length
    onSlice?.(s)
  }
  expect(next).toBe(size)
  return { slices, joined, buffers }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

describe('readFixedChunks', () => {
  it('cuts a 64 MiB file into exact 1 MiB chunks in one reused buffer', async () => {
    const r = await collect(readFixedChunks(bigPath, MiB), big.length)
    expect(r.slices).toEqual(
      Array.from({ length: 64 }, (_, i) => ({ index: i, offset: i * MiB, length: MiB })),
    )
    expect(sameBytes(r.joined, big)).toBe(true)
    expect(r.buffers.size).toBe(1)
  })

  it.each([0, 1, MiB - 1, MiB, MiB + 1])('handles a file of %i bytes', async (size) => {
    const data = big.subarray(0, size)
    const path = await tmp.file(`fixed-${size}.bin`, data)
    const r = await collect(readFixedChunks(path, MiB), size)
    expect(r.slices.map((s) => s.length)).toEqual(size === 0 ? [] : size <= MiB ? [size] : [MiB, size - MiB])
    expect(sameBytes(r.joined, data)).toBe(true)
  })

  it('reads into the buffer it is given', async () => {
    const buffer = new Uint8Array(MiB + 100)
    const r = await collect(readFixedChunks(bigPath, MiB, { buffer }), big.length)
    expect([...r.buffers]).toEqual([buffer.buffer])
  })

  it('allocates a new buffer when the consumer moves the old one away', async () => {
    const moved: ArrayBuffer[] = []
    const r = await collect(readFixedChunks(bigPath, 4 * MiB), big.length, (s) => {
      // What a transferList does: the reader's buffer is detached and now belongs to the consumer.
      moved.push((s.bytes.buffer as ArrayBuffer).transfer())
    })
    expect(sameBytes(r.joined, big)).toBe(true)
    expect(moved).toHaveLength(16)
    expect(new Uint8Array(moved[15]!).subarray(0, 4)).toEqual(big.subarray(60 * MiB, 60 * MiB + 4))
  })

  it('rejects bad arguments', async () => {
    await expect(readFixedChunks(bigPath, 0).next()).rejects.toThrow(InvalidArgumentError)
    await expect(readFixedChunks(bigPath, 65 * MiB).next()).rejects.toThrow(InvalidArgumentError)
    const buffer = new Uint8Array(10)
    await expect(readFixedChunks(bigPath, MiB, { buffer }).next()).rejects.toThrow(InvalidArgumentError)
    await expect(readFixedChunks(`${tmp.dir}/missing`, MiB).next()).rejects.toThrow(/no such file/)
    await expect(readFixedChunks(tmp.dir, MiB).next()).rejects.toThrow(/not a regular file/)
  })
})

describe('readCdcChunks', () => {
  const whole = () => cdcCuts(big, CDC, true).lengths

  it.each([
    ['default (2 * maxSize)', undefined],
    ['exactly maxSize', CDC.maxSize],
    ['an odd size', CDC.maxSize + 12_345],
  ])('matches cdcCuts over the whole file with blockSize %s', async (_name, blockSize) => {
    const opts = blockSize === undefined ? {} : { blockSize }
    const r = await collect(readCdcChunks(bigPath, CDC, opts), big.length)
    const lengths = r.slices.map((s) => s.length)
    expect(lengths).toEqual(whole())
    lengths.forEach((len, i) => {
      expect(len).toBeLessThanOrEqual(CDC.maxSize)
      if (i < lengths.length - 1) expect(len).toBeGreaterThan(CDC.minSize)
    })
    expect(sameBytes(r.joined, big)).toBe(true)
    expect(r.buffers.size).toBe(1)
    const [buffer] = r.buffers
    expect(buffer!.byteLength).toBe(blockSize ?? 2 * CDC.maxSize)
  })

  const { minSize: mn, maxSize: mx } = SMALL
  it.each([0, 1, mn - 1, mn, mn + 1, mx - 1, mx, mx + 1, 3 * mx + 17])(
    'handles a file of %i bytes',
    async (size) => {
      const data = big.subarray(0, size)
      const path = await tmp.file(`cdc-${size}.bin`, data)
      const r = await collect(readCdcChunks(path, SMALL, { blockSize: mx }), size)
      expect(r.slices.map((s) => s.length)).toEqual(cdcCuts(data, SMALL, true).lengths)
      expect(sameBytes(r.joined, data)).toBe(true)
    },
  )

  it('re-reads the rest of the block when the consumer moves the buffer away', async () => {
    let moves = 0
    const r = await collect(readCdcChunks(bigPath, CDC), big.length, (s) => {
      if (s.index % 3 === 0) {
        ;(s.bytes.buffer as ArrayBuffer).transfer()
        moves++
      }
    })
    expect(r.slices.map((s) => s.length)).toEqual(whole())
    expect(sameBytes(r.joined, big)).toBe(true)
    expect(moves).toBeGreaterThan(5)
  })

  it('rejects a block smaller than maxSize', async () => {
    await expect(readCdcChunks(bigPath, CDC, { blockSize: MiB }).next()).rejects.toThrow(InvalidArgumentError)
  })
})

describe('cancellation', () => {
  it.each([
    ['fixed', (signal: AbortSignal) => readFixedChunks(bigPath, MiB, { signal })],
    ['cdc', (signal: AbortSignal) => readCdcChunks(bigPath, CDC, { signal })],
  ])('%s: aborting stops the generator with AbortedError', async (_name, read) => {
    const ac = new AbortController()
    let seen = 0
    const run = async () => {
      for await (const _ of read(ac.signal)) {
        if (++seen === 3) ac.abort(new Error('user pressed ctrl-c'))
      }
    }
    const err = await run().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(AbortedError)
    expect((err as AbortedError).cause).toEqual(new Error('user pressed ctrl-c'))
    expect(seen).toBe(3)
  })

  it('an already aborted signal fails before opening the file', async () => {
    const signal = AbortSignal.abort()
    await expect(readFixedChunks(`${tmp.dir}/missing`, MiB, { signal }).next()).rejects.toThrow(AbortedError)
    await expect(readCdcChunks(`${tmp.dir}/missing`, CDC, { signal }).next()).rejects.toThrow(AbortedError)
  })
})

describe('files that change while read', () => {
  it('a file truncated mid-read fails with ContentChangedError', async () => {
    const path = await tmp.file('shrinks.bin', big.subarray(0, 8 * MiB))
    const gen = readFixedChunks(path, MiB)
    await gen.next()
    await truncate(path, 2 * MiB + 10)
    await gen.next()
    await expect(gen.next()).rejects.toThrow(/shorter than expected/)
  })

  it('a file that grows while read fails with ContentChangedError at the end', async () => {
    const path = await tmp.file('grows.bin', big.subarray(0, 3 * MiB))
    const run = async () => {
      for await (const s of readCdcChunks(path, SMALL)) {
        if (s.index === 0) await appendFile(path, 'more')
      }
    }
    await expect(run()).rejects.toThrow(ContentChangedError)
  })
})

describe('readRange', () => {
  it('reads an exact range into the start of the buffer', async () => {
    const fh = await open(bigPath, 'r')
    try {
      const into = new Uint8Array(100).fill(7)
      await readRange(fh, 12_345, 50, into.subarray(10))
      expect(into.subarray(10, 60)).toEqual(big.subarray(12_345, 12_395))
      expect(into[60]).toBe(7)
      await readRange(fh, 0, 0, into)
      await expect(readRange(fh, big.length - 10, 20, into)).rejects.toThrow(ContentChangedError)
      await expect(readRange(fh, 0, 101, into)).rejects.toThrow(InvalidArgumentError)
      await expect(readRange(fh, -1, 1, into)).rejects.toThrow(InvalidArgumentError)
    } finally {
      await fh.close()
    }
  })
})
