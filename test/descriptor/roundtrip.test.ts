import { access, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  contentId,
  DescriptorReader,
  DescriptorWriter,
  decodeHeader,
  decodeHeaderForCid,
  descriptorPathFor,
  encodeHeader,
  encodePage,
  HEADER_SLOT_SIZE,
  ROW_SIZE,
  VerifiedLeafTable,
} from '../../src/descriptor/index.ts'
import {
  AbortedError,
  ConfigInvalidError,
  DescriptorInvalidError,
  InvalidArgumentError,
  ProofInvalidError,
  RootMismatchError,
  UnsupportedVersionError,
} from '../../src/errors.ts'
import { EMPTY_ROOT, leafNode, MerkleLevels, merkleRoot } from '../../src/merkle/index.ts'
import type { ChunkingParams, LeafEntry } from '../../src/types.ts'
import { CDC_SMALL, cdcEntries, FIXED_64K, fixedEntries, hex, sizeOf, withTmpDir } from './helpers.ts'

const P = 16
const plain = (e: LeafEntry | undefined) => e && { offset: e.offset, length: e.length, hash: hex(e.hash) }

async function writeDescriptor(
  path: string,
  chunking: ChunkingParams,
  entries: readonly LeafEntry[],
  pageSize = P,
) {
  const w = await DescriptorWriter.create(path, { chunking, pageSize })
  for (const e of entries) await w.append(e)
  return w.finish(sizeOf(entries))
}

describe('writer -> reader -> VerifiedLeafTable', () => {
  const cases: [string, ChunkingParams, number][] = []
  for (const n of [0, 1, P - 1, P, P + 1, 3 * P + 5]) {
    cases.push(['fixed', FIXED_64K, n], ['cdc', CDC_SMALL, n])
  }
  for (const [kind, chunking, n] of cases) {
    it(`${kind}, ${n} leaves`, async () => {
      await withTmpDir(async (dir) => {
        const entries = kind === 'fixed' ? fixedEntries(n) : cdcEntries(n)
        const path = descriptorPathFor(join(dir, 'content.bin'))
        const result = await writeDescriptor(path, chunking, entries)
        expect(await readdir(dir)).toEqual(['content.bin.haul']) // no .tmp left behind
        expect(result.header.leafCount).toBe(n)
        expect(result.header.totalSize).toBe(sizeOf(entries))
        expect(hex(result.header.root)).toBe(hex(merkleRoot(entries.map(leafNode))))
        expect(hex(result.cid)).toBe(hex(contentId(result.headerBytes)))
        if (n === 0) expect(hex(result.header.root)).toBe(hex(EMPTY_ROOT))
        expect((await stat(path)).size).toBe(HEADER_SLOT_SIZE + n * ROW_SIZE)

        const reader = await DescriptorReader.open(path)
        try {
          expect(hex(reader.headerBytes)).toBe(hex(result.headerBytes))
          expect(hex(reader.cid)).toBe(hex(result.cid))
          expect(reader.pageCount).toBe(Math.ceil(n / P))

          const table = new VerifiedLeafTable(decodeHeaderForCid(reader.headerBytes, result.cid), {
            maxCachedPages: 2,
          })
          expect(table.pageCount).toBe(reader.pageCount)
          // Accept pages out of order (last first) to exercise the neighbour checks both ways.
          const order = [...Array(table.pageCount).keys()].reverse()
          for (const p of order) {
            const { entries: rows, proof } = await reader.readPage(p)
            const got = table.acceptPage(p, rows, proof)
            expect(got.map(plain)).toEqual(entries.slice(p * P, (p + 1) * P).map(plain))
          }
          for (let i = 0; i < n; i++) {
            const p = table.pageOf(i)
            expect(p).toBe(Math.floor(i / P))
            if (table.has(p)) expect(plain(table.get(i))).toEqual(plain(entries[i]))
            else expect(table.get(i)).toBeUndefined()
            expect(plain(await reader.entry(i))).toEqual(plain(entries[i]))
          }
          expect(table.cachedPages).toBeLessThanOrEqual(2)
        } finally {
          await reader.close()
        }
      })
    })
  }

  it('serves with the default page size of 1024', async () => {
    await withTmpDir(async (dir) => {
      const entries = fixedEntries(1024 * 3 + 5)
      const w = await DescriptorWriter.create(join(dir, 'd.haul'), { chunking: FIXED_64K })
      for (const e of entries) await w.append(e)
      const { header } = await w.finish(sizeOf(entries))
      expect(header.pageSize).toBe(1024)
      const reader = await DescriptorReader.open(join(dir, 'd.haul'))
      const table = new VerifiedLeafTable(reader.header)
      for (let p = 0; p < 4; p++) {
        const { entries: rows, proof } = await reader.readPage(p)
        expect(proof.length).toBe(2) // log2(4) page-level siblings, not one per leaf
        table.acceptPage(p, rows, proof)
      }
      expect(plain(table.get(3076))).toEqual(plain(entries[3076]))
      expect(reader.memoryBytes).toBe((4 + 2 + 1) * 32)
      await reader.close()
    })
  })
})

describe('VerifiedLeafTable rejects tampering', () => {
  it('flipped bytes in rows or proof, swapped pages, wrong sizes', async () => {
    await withTmpDir(async (dir) => {
      const entries = cdcEntries(4 * P + 3)
      const path = join(dir, 'd.haul')
      const { header } = await writeDescriptor(path, CDC_SMALL, entries)
      const reader = await DescriptorReader.open(path)
      const table = new VerifiedLeafTable(header)
      const page1 = await reader.readPage(1)
      const page2 = await reader.readPage(2)
      const flip = (b: Uint8Array, at: number) => {
        const c = new Uint8Array(b)
        c[at] = c[at]! ^ 0x80
        return c
      }
      // offset high byte, offset low byte, length, hash: every field of a row is committed.
      for (const at of [0, 7, ROW_SIZE + 9, 5 * ROW_SIZE + 12, P * ROW_SIZE - 1]) {
        expect(() => table.acceptPage(1, flip(page1.entries, at), page1.proof)).toThrow(ProofInvalidError)
      }
      page1.proof.forEach((node, k) => {
        const bad = page1.proof.slice()
        bad[k] = flip(node, 31)
        expect(() => table.acceptPage(1, page1.entries, bad)).toThrow(ProofInvalidError)
      })
      expect(() => table.acceptPage(1, page2.entries, page2.proof)).toThrow(ProofInvalidError)
      expect(() => table.acceptPage(2, page1.entries, page1.proof)).toThrow(ProofInvalidError)
      expect(() => table.acceptPage(1, page1.entries, page2.proof)).toThrow(ProofInvalidError)
      expect(() => table.acceptPage(1, page1.entries.subarray(ROW_SIZE), page1.proof)).toThrow(
        ProofInvalidError,
      )
      expect(() => table.acceptPage(1, page1.entries, page1.proof.slice(1))).toThrow(ProofInvalidError)
      expect(() => table.acceptPage(1, page1.entries, [...page1.proof, page1.proof[0]!])).toThrow(
        ProofInvalidError,
      )
      expect(table.has(1)).toBe(false)
      expect(() => table.acceptPage(5, page1.entries, page1.proof)).toThrow(InvalidArgumentError)
      expect(table.acceptPage(1, page1.entries, page1.proof).length).toBe(P)
      expect(table.has(1)).toBe(true)
      await reader.close()
    })
  })

  it('DescriptorInvalidError when the committed table itself is malformed', () => {
    // A dishonest publisher can commit to anything; the root proves it, the shape checks catch it.
    const gapAt = (entries: LeafEntry[], i: number, by: number) =>
      entries.map((e, k) => (k >= i ? { ...e, offset: e.offset + by } : e))
    const build = (chunking: ChunkingParams, entries: LeafEntry[], totalSize = sizeOf(entries)) => {
      const header = decodeHeader(
        encodeHeader({
          version: 1,
          chunking,
          totalSize,
          leafCount: entries.length,
          pageSize: P,
          root: merkleRoot(entries.map(leafNode)),
        }),
      )
      const pageRoots = []
      for (let p = 0; p * P < entries.length; p++) {
        pageRoots.push(merkleRoot(entries.slice(p * P, (p + 1) * P).map(leafNode)))
      }
      const levels = MerkleLevels.fromNodes(pageRoots)
      const page = (p: number) =>
        [p, encodePage(entries.slice(p * P, (p + 1) * P)), levels.proveRange(p, p + 1)] as const
      return { table: new VerifiedLeafTable(header), page }
    }

    // cdc gap between page 0 and page 1: each page alone looks fine, the pair does not.
    const gapped = gapAt(cdcEntries(2 * P + 1), P, 10)
    const a = build(CDC_SMALL, gapped)
    a.table.acceptPage(...a.page(0))
    expect(() => a.table.acceptPage(...a.page(1))).toThrow(DescriptorInvalidError)
    const b = build(CDC_SMALL, gapped)
    b.table.acceptPage(...b.page(1))
    expect(() => b.table.acceptPage(...b.page(0))).toThrow(DescriptorInvalidError)
    // gap inside a page
    const c = build(CDC_SMALL, gapAt(cdcEntries(P), 3, 10))
    expect(() => c.table.acceptPage(...c.page(0))).toThrow(DescriptorInvalidError)
    // fixed chunking: a page shifted by one chunk is caught without its neighbours
    const d = build(FIXED_64K, gapAt(fixedEntries(2 * P + 1), 0, 65536), sizeOf(fixedEntries(2 * P + 1)))
    expect(() => d.table.acceptPage(...d.page(1))).toThrow(DescriptorInvalidError)
    // last page ending before the declared size
    const e = build(CDC_SMALL, cdcEntries(P + 1), sizeOf(cdcEntries(P + 1)) + 1)
    expect(() => e.table.acceptPage(...e.page(1))).toThrow(DescriptorInvalidError)
  })

  it('bad header, bad options, cid mismatch', () => {
    const entries = fixedEntries(3)
    const header = {
      version: 1,
      chunking: FIXED_64K,
      totalSize: sizeOf(entries),
      leafCount: 3,
      pageSize: P,
      root: merkleRoot(entries.map(leafNode)),
    }
    expect(() => new VerifiedLeafTable({ ...header, leafCount: 4 })).toThrow(DescriptorInvalidError)
    expect(() => new VerifiedLeafTable(header, { maxCachedPages: 0 })).toThrow(ConfigInvalidError)
    expect(() => new VerifiedLeafTable(header, { maxCachedPages: 1.5 })).toThrow(ConfigInvalidError)
    const bytes = encodeHeader(header)
    expect(() => decodeHeaderForCid(bytes, new Uint8Array(32))).toThrow(RootMismatchError)
    expect(decodeHeaderForCid(bytes, contentId(bytes)).leafCount).toBe(3)
    const t = new VerifiedLeafTable(header)
    expect(() => t.pageOf(3)).toThrow(InvalidArgumentError)
    expect(() => t.get(-1)).toThrow(InvalidArgumentError)
    expect(t.get(0)).toBeUndefined()
  })
})

describe('DescriptorWriter', () => {
  it('refuses bad entries with InvalidArgumentError and stays usable', async () => {
    await withTmpDir(async (dir) => {
      const w = await DescriptorWriter.create(join(dir, 'd.haul'), { chunking: FIXED_64K, pageSize: P })
      const h = new Uint8Array(32)
      await expect(w.append({ offset: 5, length: 65536, hash: h })).rejects.toThrow(InvalidArgumentError)
      await expect(w.append({ offset: 0, length: 0, hash: h })).rejects.toThrow(InvalidArgumentError)
      await expect(w.append({ offset: 0, length: 65537, hash: h })).rejects.toThrow(InvalidArgumentError)
      await expect(w.append({ offset: 0, length: 100, hash: new Uint8Array(31) })).rejects.toThrow(
        InvalidArgumentError,
      )
      await w.append({ offset: 0, length: 100, hash: h })
      // a short fixed chunk may only be the last one
      await expect(w.append({ offset: 100, length: 100, hash: h })).rejects.toThrow(InvalidArgumentError)
      await expect(w.finish(99)).rejects.toThrow(InvalidArgumentError)
      const { header } = await w.finish(100)
      expect(header.leafCount).toBe(1)
      await expect(w.append({ offset: 100, length: 1, hash: h })).rejects.toThrow(InvalidArgumentError)
    })
  })

  it('cdc rules: at most max, at least min except the last', async () => {
    await withTmpDir(async (dir) => {
      const w = await DescriptorWriter.create(join(dir, 'd.haul'), { chunking: CDC_SMALL, pageSize: P })
      const h = new Uint8Array(32)
      await expect(w.append({ offset: 0, length: 4097, hash: h })).rejects.toThrow(InvalidArgumentError)
      await w.append({ offset: 0, length: 255, hash: h })
      await expect(w.append({ offset: 255, length: 300, hash: h })).rejects.toThrow(InvalidArgumentError)
      await w.abort()
    })
  })

  it('refuses a concurrent append instead of interleaving', async () => {
    await withTmpDir(async (dir) => {
      const w = await DescriptorWriter.create(join(dir, 'd.haul'), { chunking: FIXED_64K, pageSize: P })
      const entries = fixedEntries(P + 2)
      for (const e of entries.slice(0, P - 1)) await w.append(e)
      const flushing = w.append(entries[P - 1]!) // fills the page: this one awaits a write
      await expect(w.append(entries[P]!)).rejects.toThrow(InvalidArgumentError)
      await flushing
      await w.append(entries[P]!)
      await w.append(entries[P + 1]!)
      const { header } = await w.finish(sizeOf(entries))
      expect(hex(header.root)).toBe(hex(merkleRoot(entries.map(leafNode))))
    })
  })

  it('abort() during a pending append wins: the writer is closed and its file gone', async () => {
    await withTmpDir(async (dir) => {
      const w = await DescriptorWriter.create(join(dir, 'd.haul'), { chunking: FIXED_64K, pageSize: P })
      const entries = fixedEntries(P + 1)
      for (const e of entries.slice(0, P - 1)) await w.append(e)
      const flushing = w.append(entries[P - 1]!).catch((err: unknown) => err)
      await w.abort()
      await flushing
      await expect(w.append(entries[P]!)).rejects.toThrow(InvalidArgumentError)
      await expect(w.finish(sizeOf(entries))).rejects.toThrow(InvalidArgumentError)
      expect(await readdir(dir)).toEqual([])
    })
  })

  it('ConfigInvalidError for bad options, without touching the disk', async () => {
    await withTmpDir(async (dir) => {
      const path = join(dir, 'd.haul')
      const bad = [
        { chunking: FIXED_64K, pageSize: 1000 },
        { chunking: FIXED_64K, pageSize: 8 },
        { chunking: { kind: 'fixed', size: 1000 } as const },
        { chunking: { kind: 'cdc', minSize: 10, avgSize: 8, maxSize: 4 } as const },
        { chunking: undefined as unknown as ChunkingParams },
      ]
      for (const o of bad) await expect(DescriptorWriter.create(path, o)).rejects.toThrow(ConfigInvalidError)
      expect(await readdir(dir)).toEqual([])
    })
  })

  it("a dead writer's temporary file is removed by the next writer; a live one's is left", async () => {
    await withTmpDir(async (dir) => {
      const path = join(dir, 'd.haul')
      // A pid no process has (above the kernel's pid_max), and this process's own.
      const dead = `d.haul.${2 ** 22 + 1}.0badf00d.tmp`
      const live = `d.haul.${process.pid}.0badf00d.tmp`
      await writeFile(join(dir, dead), 'x')
      await writeFile(join(dir, live), 'x')
      const w = await DescriptorWriter.create(path, { chunking: FIXED_64K, pageSize: P })
      await w.abort()
      expect(await readdir(dir)).toEqual([live])
    })
  })

  it('abort() and an aborted signal remove the temporary file', async () => {
    await withTmpDir(async (dir) => {
      const path = join(dir, 'd.haul')
      const w = await DescriptorWriter.create(path, { chunking: FIXED_64K, pageSize: P })
      for (const e of fixedEntries(P + 1)) await w.append(e)
      expect(await readdir(dir)).toEqual([
        expect.stringMatching(new RegExp(`^d\\.haul\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`)),
      ])
      await w.abort()
      await w.abort()
      expect(await readdir(dir)).toEqual([])

      const ac = new AbortController()
      const w2 = await DescriptorWriter.create(path, { chunking: FIXED_64K, pageSize: P })
      await w2.append(fixedEntries(2)[0]!)
      ac.abort()
      await expect(w2.append(fixedEntries(2)[1]!, { signal: ac.signal })).rejects.toThrow(AbortedError)
      expect(await readdir(dir)).toEqual([])
      await expect(DescriptorWriter.create(path, { chunking: FIXED_64K, signal: ac.signal })).rejects.toThrow(
        AbortedError,
      )
    })
  })
})

describe('DescriptorReader rejects damaged files', () => {
  async function withDescriptor(fn: (path: string, bytes: Uint8Array) => Promise<void>) {
    await withTmpDir(async (dir) => {
      const path = join(dir, 'd.haul')
      await writeDescriptor(path, CDC_SMALL, cdcEntries(2 * P + 3))
      await fn(path, new Uint8Array(await readFile(path)))
    })
  }
  const damaged = async (path: string, bytes: Uint8Array, edit: (b: Uint8Array, v: DataView) => void) => {
    const copy = new Uint8Array(bytes)
    edit(copy, new DataView(copy.buffer))
    await writeFile(path, copy)
    return DescriptorReader.open(path)
  }

  it('DescriptorInvalidError for every kind of damage', async () => {
    await withDescriptor(async (path, bytes) => {
      const rows = HEADER_SLOT_SIZE
      const edits: [string, (b: Uint8Array, v: DataView) => void][] = [
        ['header length too large', (_, v) => v.setUint32(0, 200)],
        ['header length too small', (_, v) => v.setUint32(0, 62)],
        ['non-zero padding', (b) => (b[HEADER_SLOT_SIZE - 1] = 1)],
        ['bad magic', (b) => (b[4] = 0)],
        ['row hash flipped', (b) => (b[rows + ROW_SIZE * 20 + 30]! ^= 1)],
        ['row length changed', (b) => (b[rows + ROW_SIZE * 33 + 11]! ^= 1)],
        ['root flipped', (b) => (b[4 + 70 - 1]! ^= 1)],
      ]
      for (const [what, edit] of edits) {
        await expect(damaged(path, bytes, edit), what).rejects.toThrow(DescriptorInvalidError)
      }
      await expect(damaged(path, bytes, (b) => (b[8] = 2))).rejects.toThrow(UnsupportedVersionError)
      await writeFile(path, bytes)
      await truncate(path, bytes.length - 1)
      await expect(DescriptorReader.open(path)).rejects.toThrow(DescriptorInvalidError)
      await writeFile(path, Uint8Array.of(...bytes, 0))
      await expect(DescriptorReader.open(path)).rejects.toThrow(DescriptorInvalidError)
      await writeFile(path, bytes.subarray(0, 100))
      await expect(DescriptorReader.open(path)).rejects.toThrow(DescriptorInvalidError)
    })
  })

  it('honours abort, range checks and close', async () => {
    await withDescriptor(async (path) => {
      const ac = new AbortController()
      ac.abort()
      await expect(DescriptorReader.open(path, { signal: ac.signal })).rejects.toThrow(AbortedError)
      const reader = await DescriptorReader.open(path)
      await expect(reader.readPage(3)).rejects.toThrow(InvalidArgumentError)
      await expect(reader.readPage(-1)).rejects.toThrow(InvalidArgumentError)
      await expect(reader.entry(2 * P + 3)).rejects.toThrow(InvalidArgumentError)
      await expect(reader.readPage(0, { signal: ac.signal })).rejects.toThrow(AbortedError)
      await reader.close()
      await expect(reader.readPage(0)).rejects.toThrow(InvalidArgumentError)
      await reader.close()
      await access(path)
    })
  })
})
