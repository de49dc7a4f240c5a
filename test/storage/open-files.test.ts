import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DescriptorReader } from '../../src/descriptor/reader.ts'
import { ContentChangedError } from '../../src/errors.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { OpenFiles } from '../../src/storage/open-files.ts'
import { fingerprint, SourceFile } from '../../src/storage/source-file.ts'
import { WorkerPool } from '../../src/workers/pool.ts'

/** A handle that records its closing. */
function fakeHandle(log: string[], name: string) {
  return {
    closed: false,
    close() {
      this.closed = true
      log.push(`close ${name}`)
    },
  }
}

describe('OpenFiles: a bounded cache of open handles', () => {
  it('keeps at most its limit, closing the least recently used, and opens a closed one again', async () => {
    const log: string[] = []
    const files = new OpenFiles(2)
    const owners = [{}, {}, {}]
    const opened = owners.map(() => 0)
    const use = (i: number) =>
      files.use(
        owners[i]!,
        0,
        () => {
          opened[i]!++
          return fakeHandle(log, `f${i}`)
        },
        () => {},
      )
    await use(0)
    await use(1)
    await use(0)
    await use(2)
    // f1 was the least recently used.
    expect(log).toEqual(['close f1'])
    expect(files.size).toBe(2)
    await use(1)
    expect(opened).toEqual([1, 2, 1])
    expect(log).toEqual(['close f1', 'close f0'])
    await files.forget(owners[1]!)
    await files.forget(owners[2]!)
    expect(log).toEqual(['close f1', 'close f0', 'close f1', 'close f2'])
    expect(files.size).toBe(0)
  })

  it('a handle in use is not closed under its reader: evicted meanwhile, it closes once the read is done', async () => {
    const log: string[] = []
    const files = new OpenFiles(1)
    const a = {}
    let done!: () => void
    const reading = files.use(
      a,
      0,
      () => fakeHandle(log, 'a'),
      async (h) => {
        await new Promise<void>((r) => (done = r))
        // Still open here, although two other files came in meanwhile.
        expect(h.closed).toBe(false)
        return 'read'
      },
    )
    await files.use(
      {},
      0,
      () => fakeHandle(log, 'b'),
      () => {},
    )
    await files.use(
      {},
      0,
      () => fakeHandle(log, 'c'),
      () => {},
    )
    await new Promise((r) => setImmediate(r))
    // b and c went once idle; a is busy, so it stays open beyond the limit.
    expect(log).toEqual(['close b', 'close c'])
    // Forgetting a busy one waits for its reader too.
    const forgetting = files.forget(a)
    await new Promise((r) => setImmediate(r))
    expect(log).toEqual(['close b', 'close c'])
    done()
    expect(await reading).toBe('read')
    await forgetting
    await new Promise((r) => setImmediate(r))
    expect(log).toEqual(['close b', 'close c', 'close a'])
  })
})

describe('published files and descriptors reopened on demand', () => {
  let dir: string
  let pool: WorkerPool
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'haul-open-files-'))
    pool = new WorkerPool({ threads: 1 })
  })
  afterAll(async () => {
    await pool.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  async function sources(n: number, files: OpenFiles): Promise<SourceFile[]> {
    const out: SourceFile[] = []
    for (let i = 0; i < n; i++) {
      const path = join(dir, `s${i}-${Math.random().toString(36).slice(2)}`)
      await writeFile(path, `source ${i} `.repeat(500))
      out.push(await SourceFile.open(path, await fingerprint(path), 0, files))
    }
    return out
  }

  async function firstBytes(src: SourceFile): Promise<string> {
    const buf = new Uint8Array(9)
    await src.read(0, 9, buf)
    return Buffer.from(buf).toString()
  }

  it('a source file closed by the LRU is read again after reopening, unchanged', async () => {
    const files = new OpenFiles(2)
    const [a, b, c] = await sources(3, files)
    expect(files.size).toBe(2)
    // a was closed when c opened; reading it opens it again.
    expect(await firstBytes(a!)).toBe('source 0 ')
    await a!.checkUnchanged()
    expect(await firstBytes(b!)).toBe('source 1 ')
    expect(await firstBytes(c!)).toBe('source 2 ')
    expect(files.size).toBe(2)
    await Promise.all([a!.close(), b!.close(), c!.close()])
    expect(files.size).toBe(0)
  })

  it('a source file replaced or removed between close and reopen is CONTENT_CHANGED; one written at its size is hashed again', async () => {
    const files = new OpenFiles(1)
    const [changed, replaced, removed, last] = await sources(4, files)
    // Only `last` is open now: the others reopen on their next read.
    const fh = await open(changed!.path, 'r+')
    await fh.write(new Uint8Array([1]), 0, 1, 3)
    await fh.close()
    // The same bytes in a new file (an editor's save): another inode.
    await writeFile(`${replaced!.path}.new`, await readFile(replaced!.path))
    await rename(`${replaced!.path}.new`, replaced!.path)
    await rm(removed!.path)
    for (const src of [replaced!, removed!]) {
      await expect(firstBytes(src)).rejects.toBeInstanceOf(ContentChangedError)
      await expect(src.checkUnchanged()).rejects.toMatchObject({ code: 'CONTENT_CHANGED' })
    }
    // Only hashing can tell its bytes from the indexed ones (chunk-encoder.ts refuses a mismatch).
    await firstBytes(changed!)
    expect(changed!.needsChunkHash).toBe(true)
    expect(await firstBytes(last!)).toBe('source 3 ')
    await Promise.all([changed, replaced, removed, last].map((s) => s!.close()))
  })

  it('a read of a source file closed by an unpublish is CONTENT_NOT_FOUND (the file did not change)', async () => {
    const files = new OpenFiles(4)
    const [src] = await sources(1, files)
    await src!.close()
    await expect(firstBytes(src!)).rejects.toMatchObject({ code: 'CONTENT_NOT_FOUND' })
  })

  it('a descriptor reader closed by the LRU reopens its descriptor; a different table there is refused', async () => {
    const files = new OpenFiles(1)
    const budget = new MemoryBudget({ limit: 16 * 1024 * 1024 })
    const make = async (name: string, text: string) => {
      const path = join(dir, name)
      await writeFile(path, text.repeat(100_000))
      const index = await indexFile(path, {
        chunking: { kind: 'fixed', size: 64 * 1024 },
        pool,
        budget,
        descriptorPath: `${path}.haul`,
      })
      return { index, reader: await DescriptorReader.open(index.descriptorPath, { files }) }
    }
    const a = await make('d-a', 'aaaa')
    const b = await make('d-b', 'bbbb')
    // b pushed a's handle out: reading a's rows opens it again.
    expect((await a.reader.entry(3)).offset).toBe(3 * 64 * 1024)
    expect((await a.reader.readPage(0)).entries.length).toBeGreaterThan(0)
    // Another table under a's name while its handle is closed.
    await b.reader.entry(0)
    await rename(b.index.descriptorPath, a.index.descriptorPath)
    await expect(a.reader.readPage(0)).rejects.toMatchObject({ code: 'DESCRIPTOR_INVALID' })
    await Promise.all([a.reader.close(), b.reader.close()])
  })

  it('a descriptor replaced by a FIFO while its handle is closed is DESCRIPTOR_INVALID at once, not waited on', async () => {
    const files = new OpenFiles(1)
    const path = join(dir, 'd-fifo')
    await writeFile(path, 'ffff'.repeat(50_000))
    const index = await indexFile(path, {
      chunking: { kind: 'fixed', size: 64 * 1024 },
      pool,
      budget: new MemoryBudget({ limit: 16 * 1024 * 1024 }),
      descriptorPath: `${path}.haul`,
    })
    const reader = await DescriptorReader.open(index.descriptorPath, { files })
    // Another file takes the only place: the descriptor reopens on its next read.
    const [other] = await sources(1, files)
    await rm(index.descriptorPath)
    execFileSync('mkfifo', [index.descriptorPath])
    try {
      const read = reader.readPage(0).then(
        () => 'read',
        (err: { code?: string }) => err.code,
      )
      const timer = new Promise((resolve) => setTimeout(() => resolve('still opening after 3 s'), 3000))
      expect(await Promise.race([read, timer])).toBe('DESCRIPTOR_INVALID')
    } finally {
      // A reader blocked in open(2) (without O_NONBLOCK) is freed by a writer's open.
      try {
        closeSync(openSync(index.descriptorPath, constants.O_WRONLY | constants.O_NONBLOCK))
      } catch {
        // ENXIO: no reader waits on it.
      }
    }
    await Promise.all([reader.close(), other!.close()])
  })
})
