import { execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import { AbortedError, ConfigInvalidError } from '../../src/errors.ts'
import {
  DIRECT_ALIGN,
  DIRECT_SLOT_BYTES,
  DirectWriteSlots,
  directPrefix,
  O_DIRECT,
} from '../../src/storage/direct-writes.ts'
import { PartFile } from '../../src/storage/part-file.ts'
import { tempDir } from '../support/files.ts'

const MiB = 1024 * 1024

/** Bytes of `path` in the page cache (util-linux fincore): what a buffered write leaves behind. */
function residentBytes(path: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], {
    encoding: 'utf8',
  })
  return Number(out.trim())
}

function random(n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let at = 0; at < n; at += 65536) randomFillSync(b, at, Math.min(65536, n - at))
  return b
}

describe('direct chunk writes', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-direct-'))
  })
  afterAll(async () => cleanup())

  it('only block-aligned offsets and lengths go direct', () => {
    expect(directPrefix(0, MiB)).toBe(MiB)
    expect(directPrefix(MiB, MiB + 100)).toBe(MiB)
    expect(directPrefix(MiB, 100)).toBe(0)
    expect(directPrefix(100, MiB)).toBe(0)
    expect(directPrefix(DIRECT_ALIGN * 3, DIRECT_ALIGN * 2 - 1)).toBe(DIRECT_ALIGN)
  })

  it.runIf(O_DIRECT !== undefined)(
    'aligned chunks bypass the page cache, the odd tail is buffered, and every byte reads back',
    async () => {
      const dest = join(dir, 'mixed.bin')
      const size = 5 * MiB + 1234
      const data = random(size)
      const slots = new DirectWriteSlots(2)
      const part = await PartFile.open(dest, size, { direct: slots })
      expect(part.writesDirect).toBe(true)
      // 2 MiB chunks (each spans two slots) plus a tail; written out of order, all at once.
      const chunks = [
        [2 * MiB, 2 * MiB],
        [4 * MiB, MiB + 1234],
        [0, 2 * MiB],
      ] as const
      await Promise.all(chunks.map(([at, n]) => part.write(at, data.subarray(at, at + n))))
      expect(slots.freeSlots).toBe(2)
      await part.datasync()
      // Only the buffered tail (1234 bytes: one page) may be cached; a buffered write of it all would be 5 MiB.
      expect(residentBytes(part.partPath)).toBeLessThanOrEqual(DIRECT_ALIGN)
      await part.commit()
      expect(Buffer.from(await readFile(dest)).equals(Buffer.from(data))).toBe(true)
    },
  )

  it('without staging slots every write is buffered (and lands in the page cache)', async () => {
    const dest = join(dir, 'buffered.bin')
    const data = random(2 * MiB)
    const part = await PartFile.open(dest, data.length)
    expect(part.writesDirect).toBe(false)
    await part.write(0, data)
    expect(residentBytes(part.partPath)).toBe(2 * MiB)
    await part.commit()
    expect(Buffer.from(await readFile(dest)).equals(Buffer.from(data))).toBe(true)
  })

  it.runIf(O_DIRECT !== undefined)(
    'a filesystem that refuses a direct write (EINVAL) gets the bytes buffered and direct writes stop',
    async () => {
      // Staging memory at an odd address: the kernel refuses it exactly as a filesystem without
      // O_DIRECT alignment support would.
      class MisalignedSlots extends DirectWriteSlots {
        readonly #backing = new Uint8Array(DIRECT_SLOT_BYTES + 1)
        override acquire(): Promise<Uint8Array> {
          return Promise.resolve(this.#backing.subarray(1))
        }
        override release(): void {}
      }
      const dest = join(dir, 'refused.bin')
      const data = random(2 * MiB)
      const part = await PartFile.open(dest, data.length, { direct: new MisalignedSlots(1) })
      expect(part.writesDirect).toBe(true)
      await part.write(0, data.subarray(0, MiB))
      expect(part.writesDirect).toBe(false)
      await part.write(MiB, data.subarray(MiB))
      await part.commit()
      expect(Buffer.from(await readFile(dest)).equals(Buffer.from(data))).toBe(true)
    },
  )

  it('slots bound the writes in flight: the next waits for a release, or rejects on abort', async () => {
    const slots = new DirectWriteSlots(2)
    const a = await slots.acquire()
    const b = await slots.acquire()
    expect(slots.freeSlots).toBe(0)
    let third: Uint8Array | undefined
    const waiting = slots.acquire().then((s) => {
      third = s
    })
    const ac = new AbortController()
    const aborted = slots.acquire(ac.signal)
    await Promise.resolve()
    expect(third).toBeUndefined()
    ac.abort()
    await expect(aborted).rejects.toBeInstanceOf(AbortedError)
    slots.release(a)
    await waiting
    expect(third).toBe(a)
    slots.release(b)
    slots.release(third!)
    expect(slots.freeSlots).toBe(2)
    // Slots are distinct, page-aligned 1 MiB regions of one fixed memory.
    expect(a.byteOffset % DIRECT_ALIGN).toBe(0)
    expect(b.byteOffset % DIRECT_ALIGN).toBe(0)
    expect(a.buffer).toBe(b.buffer)
    expect(Math.abs(a.byteOffset - b.byteOffset)).toBe(DIRECT_SLOT_BYTES)
  })

  it('engine options: directWrites is checked, defaults on with 4 slots', () => {
    expect(resolveEngineConfig({}).directWrites).toEqual({ enabled: true, slots: 4 })
    expect(resolveEngineConfig({ directWrites: { enabled: false } }).directWrites.enabled).toBe(false)
    expect(() => resolveEngineConfig({ directWrites: { slots: 0 } })).toThrow(ConfigInvalidError)
    expect(() => resolveEngineConfig({ directWrites: { slots: 1.5 } })).toThrow(ConfigInvalidError)
  })
})
