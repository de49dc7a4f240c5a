import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cdcCuts } from '../../src/chunking/fastcdc.ts'
import {
  AbortedError,
  ChunkVerificationError,
  CodecUnsupportedError,
  ConfigInvalidError,
  DecompressionError,
  InvalidArgumentError,
} from '../../src/errors.ts'
import type { Codec } from '../../src/types.ts'
import { KiB, MiB } from '../../src/types.ts'
import { compress } from '../../src/workers/codecs.ts'
import { WorkerPool } from '../../src/workers/pool.ts'
import { verifyWorkerPoolOptions } from '../../src/workers/pool-options.ts'
import { threadFailure } from '../../src/workers/pool-threads.ts'
import { randomData, textLike } from './data.ts'

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

describe('WorkerPool', () => {
  let pool: WorkerPool
  beforeAll(() => {
    pool = new WorkerPool({ threads: 2 })
  })
  afterAll(async () => {
    await pool.destroy()
  })

  describe('hash', () => {
    it('equals node:crypto and moves the buffer there and back', async () => {
      const buf = randomData(MiB, 1)
      const copy = buf.slice()
      const { hash, buf: back } = await pool.hash(buf)
      expect(buf.byteLength).toBe(0)
      expect(same(back, copy)).toBe(true)
      expect(same(hash, sha256(copy))).toBe(true)
    })

    it('hashes only `length` bytes of a recycled buffer', async () => {
      const buf = randomData(4096, 2)
      const expected = sha256(buf.subarray(0, 1000))
      const r = await pool.hash(buf, { length: 1000 })
      expect(same(r.hash, expected)).toBe(true)
      expect(r.buf.length).toBe(4096)
      expect(same(sha256(new Uint8Array(0)), (await pool.hash(new Uint8Array(0))).hash)).toBe(true)
    })

    it('batch: several buffers in one message', async () => {
      const bufs = [1, 100, 64 * KiB, 0].map((n, i) => randomData(n, 10 + i))
      const copies = bufs.map((b) => b.slice())
      const { hashes, buffers } = await pool.hashBatch(bufs)
      expect(bufs.every((b) => b.byteLength === 0)).toBe(true)
      copies.forEach((c, i) => {
        expect(same(hashes[i]!, sha256(c))).toBe(true)
        expect(same(buffers[i]!, c)).toBe(true)
      })
    })

    it('refuses a view of a shared slab and leaves it attached', async () => {
      const slab = new Uint8Array(1024)
      const view = slab.subarray(0, 512)
      await expect(pool.hash(view)).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(pool.hash(Buffer.from('small, from the pool'))).rejects.toBeInstanceOf(
        InvalidArgumentError,
      )
      expect(slab.byteLength).toBe(1024)
      const a = new Uint8Array(8)
      await expect(pool.hashBatch([a, a])).rejects.toBeInstanceOf(InvalidArgumentError)
      expect(a.byteLength).toBe(8)
      await expect(pool.hash(a, { length: 9 })).rejects.toBeInstanceOf(InvalidArgumentError)
    })
  })

  describe('encode / decodeVerify', () => {
    const inputs: [string, Uint8Array][] = [
      ['text', textLike(MiB, 3)],
      ['random', randomData(MiB, 4)],
      ['empty', new Uint8Array(0)],
    ]
    for (const policy of ['none', 'lz4', 'zstd', 'auto'] as const) {
      for (const [name, data] of inputs) {
        it(`${policy}: ${name} round trip`, async () => {
          const buf = data.slice()
          const e = await pool.encode(buf, policy)
          expect(buf.byteLength).toBe(0)
          expect(same(e.hash!, sha256(data))).toBe(true)
          expect(same(e.buf, data)).toBe(true)
          if (name !== 'text' || policy === 'none') expect(e.codec).toBe('none')
          else expect(e.codec).toBe(policy === 'auto' ? 'zstd' : policy)
          if (e.codec === 'none') expect(e.payload).toBe(e.buf)
          // A zstd payload may be a view of zlib's longer chunk: a whole copy to move it again.
          const payload = e.codec === 'none' ? e.buf.slice() : new Uint8Array(e.payload)
          const out = await pool.decodeVerify(payload, e.codec, data.length, e.hash!)
          expect(payload.byteLength).toBe(0)
          expect(out.length).toBe(data.length)
          expect(same(out, data)).toBe(true)
        })
      }
    }

    it('encode with length: payload is a view of buf for none', async () => {
      const buf = randomData(8192, 5)
      const head = buf.slice(0, 3000)
      const e = await pool.encode(buf, 'auto', { length: 3000 })
      expect(e.codec).toBe('none')
      expect(e.payload.buffer).toBe(e.buf.buffer)
      expect(same(e.payload, head)).toBe(true)
      expect(same(e.hash!, sha256(head))).toBe(true)
    })

    it('encode with hash: false compresses the same and returns no hash', async () => {
      const data = textLike(MiB, 6)
      const hashed = await pool.encode(data.slice(), 'zstd')
      const unhashed = await pool.encode(data.slice(), 'zstd', { hash: false })
      expect(unhashed.hash).toBeNull()
      expect(hashed.hash).not.toBeNull()
      expect(unhashed.codec).toBe('zstd')
      expect(same(unhashed.payload, hashed.payload)).toBe(true)
    })

    it('encode with a zstd level: a stronger level keeps fewer bytes and decodes the same; a level outside 1–19 is INVALID_ARGUMENT', async () => {
      const data = textLike(MiB, 8)
      const one = await pool.encode(data.slice(), 'auto', { hash: false })
      const nine = await pool.encode(data.slice(), 'auto', { hash: false, zstdLevel: 9 })
      expect(nine.codec).toBe('zstd')
      expect(nine.payload.length).toBeLessThan(one.payload.length)
      const back = await pool.decodeVerify(nine.payload.slice(), 'zstd', data.length, sha256(data))
      expect(same(back, data)).toBe(true)
      for (const zstdLevel of [0, 20, 1.5]) {
        await expect(pool.encode(data.slice(), 'zstd', { zstdLevel })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        )
      }
    })

    it('decodes lz4 and zstd into a recycled buffer; leaves it alone for none', async () => {
      const data = textLike(300 * KiB, 6)
      for (const codec of ['lz4', 'zstd'] as const) {
        const into = new Uint8Array(MiB)
        const out = await pool.decodeVerify(compress(codec, data), codec, data.length, sha256(data), { into })
        expect(into.byteLength).toBe(0)
        expect(out.length).toBe(data.length)
        expect(out.buffer.byteLength).toBe(MiB)
        expect(same(out, data)).toBe(true)
      }
      const spare = new Uint8Array(MiB)
      const r = await pool.decodeVerify(data.slice(), 'none', data.length, sha256(data), { into: spare })
      expect(spare.byteLength).toBe(MiB)
      expect(r.byteOffset).toBe(0)
      expect(r.buffer.byteLength).toBe(data.length)
      expect(same(r, data)).toBe(true)
      // Without one, a zstd chunk decodes into a buffer exactly its length.
      const fresh = await pool.decodeVerify(compress('zstd', data), 'zstd', data.length, sha256(data))
      expect(fresh.buffer.byteLength).toBe(data.length)
      await expect(
        pool.decodeVerify(compress('lz4', data), 'lz4', data.length, sha256(data), {
          into: new Uint8Array(10),
        }),
      ).rejects.toBeInstanceOf(InvalidArgumentError)
    })

    it('hands a compressed payload back through onSpare; none has no spare', async () => {
      const data = textLike(300 * KiB, 9)
      for (const codec of ['lz4', 'zstd', 'none'] as const) {
        const payload = new Uint8Array(compress(codec, data.slice())) // owns its buffer
        const sent = payload.slice()
        const spares: Uint8Array[] = []
        const into = codec === 'lz4' ? new Uint8Array(data.length) : undefined
        const r = await pool.decodeVerify(payload, codec, data.length, sha256(data), {
          ...(into === undefined ? {} : { into }),
          onSpare: (b) => spares.push(b),
        })
        expect(same(r, data)).toBe(true)
        if (codec === 'none') {
          expect(spares).toHaveLength(0)
        } else {
          // The very bytes sent, in a buffer this thread owns again (the sent one was moved away).
          expect(payload.byteLength).toBe(0)
          expect(spares).toHaveLength(1)
          expect(spares[0]!.buffer.byteLength).toBe(sent.length)
          expect(same(spares[0]!, sent)).toBe(true)
        }
      }
    })

    it('a flipped byte is a ChunkVerificationError', async () => {
      const data = randomData(64 * KiB, 7)
      const hash = sha256(data)
      const bad = data.slice()
      bad[1234]! ^= 0x01
      await expect(pool.decodeVerify(bad, 'none', data.length, hash)).rejects.toBeInstanceOf(
        ChunkVerificationError,
      )
      const text = textLike(64 * KiB, 8)
      const wrong = sha256(text)
      wrong[0]! ^= 0x80
      await expect(
        pool.decodeVerify(compress('lz4', text), 'lz4', text.length, wrong),
      ).rejects.toBeInstanceOf(ChunkVerificationError)
      // The pool is still usable after a failed task.
      expect(same((await pool.hash(text.slice())).hash, sha256(text))).toBe(true)
    })

    it('corrupt or mislabelled payloads are DecompressionError; unknown codec refused up front', async () => {
      const text = textLike(64 * KiB, 9)
      const z = compress('zstd', text)
      const cut = new Uint8Array(z.subarray(0, z.length >> 1))
      await expect(pool.decodeVerify(cut, 'zstd', text.length, sha256(text))).rejects.toBeInstanceOf(
        DecompressionError,
      )
      await expect(
        pool.decodeVerify(new Uint8Array(z), 'lz4', text.length, sha256(text)),
      ).rejects.toBeInstanceOf(DecompressionError)
      await expect(
        pool.decodeVerify(text.slice(), 'none', text.length + 1, sha256(text)),
      ).rejects.toBeInstanceOf(DecompressionError)
      const kept = text.slice()
      await expect(pool.decodeVerify(kept, 'xz' as Codec, text.length, sha256(text))).rejects.toBeInstanceOf(
        CodecUnsupportedError,
      )
      await expect(pool.decodeVerify(kept, 'none', text.length, new Uint8Array(31))).rejects.toBeInstanceOf(
        InvalidArgumentError,
      )
      expect(kept.byteLength).toBe(text.length)
    })
  })

  describe('cdcChunkAndHash', () => {
    const params = { minSize: 64 * KiB, avgSize: 128 * KiB, maxSize: 512 * KiB }

    it('matches cdcCuts and node:crypto, carries the tail when not final', async () => {
      const data = randomData(2 * MiB, 12)
      const len = 2 * MiB - 1000
      const ref = cdcCuts(data.subarray(0, len), params, false)
      const r = await pool.cdcChunkAndHash(data.slice(), len, params, false)
      expect(r.lengths).toEqual(ref.lengths)
      expect(r.consumed).toBe(ref.consumed)
      expect(r.consumed).toBeLessThan(len)
      expect(r.buf.length).toBe(2 * MiB)
      let at = 0
      r.lengths.forEach((n, i) => {
        expect(same(r.hashes[i]!, sha256(data.subarray(at, at + n)))).toBe(true)
        at += n
      })
      const fin = await pool.cdcChunkAndHash(data.slice(), len, params, true)
      expect(fin.consumed).toBe(len)
    })

    it('refuses bad params before moving the buffer', async () => {
      const buf = new Uint8Array(1024)
      await expect(
        pool.cdcChunkAndHash(buf, 1024, { minSize: 3, avgSize: 2, maxSize: 1 }, true),
      ).rejects.toBeInstanceOf(InvalidArgumentError)
      expect(buf.byteLength).toBe(1024)
    })
  })

  describe('cancellation', () => {
    it('an already aborted signal rejects without queuing or moving', async () => {
      const buf = randomData(1024, 13)
      const ac = new AbortController()
      ac.abort()
      await expect(pool.hash(buf, { signal: ac.signal })).rejects.toBeInstanceOf(AbortedError)
      expect(buf.byteLength).toBe(1024)
      expect(pool.inFlight).toBe(0)
    })

    it('a call aborted before its task was dispatched never reaches a worker', async () => {
      const ac = new AbortController()
      const bufs = Array.from({ length: 4 }, (_, i) => randomData(64 * KiB, 20 + i))
      const calls = bufs.map((b) => pool.hash(b, { signal: ac.signal }))
      expect(pool.inFlight).toBe(4)
      ac.abort()
      for (const r of await Promise.allSettled(calls)) {
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AbortedError)
      }
      // Buffers were moved at call time: the caller cannot reuse them while a worker might.
      expect(bufs.every((b) => b.byteLength === 0)).toBe(true)
      expect(pool.inFlight).toBe(0)
    })

    it('aborting queued and running tasks rejects at once; they finish and the threads live on', async () => {
      const text = textLike(4 * MiB, 25)
      const ac = new AbortController()
      const calls = Array.from({ length: 8 }, () => pool.encode(text.slice(), 'zstd', { signal: ac.signal }))
      const settled = Promise.allSettled(calls)
      // One turn of the event loop: the tasks are now with Piscina (zstd of 4 MiB takes >10 ms each).
      await new Promise((r) => setImmediate(r))
      ac.abort(new Error('user cancelled'))
      for (const r of await settled) {
        expect(r.status).toBe('rejected')
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AbortedError)
        expect(((r as PromiseRejectedResult).reason as Error).cause).toMatchObject({
          message: 'user cancelled',
        })
      }
      // Not killed: their slots stay taken until they finish (aborting through Piscina would free them
      // at once), then drain.
      expect(pool.inFlight).toBeGreaterThan(0)
      while (pool.inFlight > 0) await new Promise((r) => setTimeout(r, 10))
      const small = textLike(1000, 30)
      expect(same((await pool.hash(small.slice())).hash, sha256(small))).toBe(true)
    })
  })
})

describe('WorkerPool bounds and lifecycle', () => {
  it('verifies options', () => {
    expect(verifyWorkerPoolOptions({ threads: 3 })).toEqual({ threads: 3, maxQueue: 12 })
    expect(() => verifyWorkerPoolOptions({ threads: 0 })).toThrow(ConfigInvalidError)
    expect(() => verifyWorkerPoolOptions({ threads: 2, maxQueue: -1 })).toThrow(ConfigInvalidError)
    expect(() => verifyWorkerPoolOptions({ threads: 1.5 })).toThrow(ConfigInvalidError)
    const opts = { threads: 2 }
    verifyWorkerPoolOptions(opts)
    expect(opts).toEqual({ threads: 2 })
  })

  it('never hands Piscina more than threads + maxQueue tasks; the rest wait', async () => {
    const pool = new WorkerPool({ threads: 2, maxQueue: 2 })
    try {
      let maxInFlight = 0
      let maxWaiting = 0
      const sample = (): void => {
        maxInFlight = Math.max(maxInFlight, pool.inFlight)
        maxWaiting = Math.max(maxWaiting, pool.queueSize)
      }
      const data = Array.from({ length: 24 }, (_, i) => randomData(256 * KiB, 40 + i))
      const calls = data.map((d) =>
        pool.hash(d.slice()).then((r) => {
          sample()
          return r
        }),
      )
      sample()
      const results = await Promise.all(calls)
      expect(maxInFlight).toBeLessThanOrEqual(4)
      expect(maxInFlight).toBeGreaterThan(0)
      expect(maxWaiting).toBeGreaterThanOrEqual(20)
      results.forEach((r, i) => {
        expect(same(r.hash, sha256(data[i]!))).toBe(true)
      })
      expect(pool.inFlight).toBe(0)
      expect(pool.queueSize).toBe(0)
    } finally {
      await pool.destroy()
    }
  })

  it('starts one thread, and more, up to threads, only while tasks wait for one', async () => {
    const pool = new WorkerPool({ threads: 3 })
    try {
      expect(pool.running).toBe(1)
      // One task at a time never needs a second thread.
      for (let i = 0; i < 4; i++) await pool.hash(randomData(64 * KiB, 70 + i))
      expect(pool.running).toBe(1)
      const data = Array.from({ length: 12 }, (_, i) => randomData(MiB, 80 + i))
      const results = await Promise.all(data.map((d) => pool.hash(d.slice())))
      results.forEach((r, i) => {
        expect(same(r.hash, sha256(data[i]!))).toBe(true)
      })
      expect(pool.running).toBe(3)
    } finally {
      await pool.destroy()
    }
  })

  it('a caller aborted while waiting for a slot leaves the queue', async () => {
    const pool = new WorkerPool({ threads: 1, maxQueue: 0 })
    try {
      const first = pool.hash(randomData(4 * MiB, 50))
      const ac = new AbortController()
      const second = pool.hash(randomData(16, 51), { signal: ac.signal })
      expect(pool.queueSize).toBe(1)
      ac.abort()
      await expect(second).rejects.toBeInstanceOf(AbortedError)
      expect(pool.queueSize).toBe(0)
      await first
      expect(pool.inFlight).toBe(0)
    } finally {
      await pool.destroy()
    }
  })

  it('destroy rejects waiting and running calls and later calls with AbortedError', async () => {
    const pool = new WorkerPool({ threads: 1, maxQueue: 1 })
    expect(pool.threads).toBe(1)
    const calls = Array.from({ length: 4 }, (_, i) => pool.hash(randomData(2 * MiB, 60 + i)))
    const settled = Promise.allSettled(calls)
    await pool.destroy()
    for (const r of await settled) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AbortedError)
    }
    expect((await settled).some((r) => r.status === 'rejected')).toBe(true)
    await expect(pool.hash(new Uint8Array(4))).rejects.toBeInstanceOf(AbortedError)
    await pool.destroy()
  })
})

describe('the worker thread file', () => {
  it('is required as a plain namespace: no default export, so no facade module from Node', () => {
    // Piscina require()s the file; Node builds a facade module (and adds __esModule) for a
    // required ES module with a default export, the step that has aborted a process natively.
    const file = fileURLToPath(new URL('../../dist/workers/worker.js', import.meta.url))
    const loaded = createRequire(import.meta.url)(file) as Record<string, unknown>
    expect(typeof loaded.handle).toBe('function')
    expect('default' in loaded).toBe(false)
    expect(loaded.__esModule).toBeUndefined()
  })
})

describe('threadFailure: what a failed worker thread is to the caller', () => {
  it('a thread that could not start for lack of file descriptors is TOO_MANY_OPEN_FILES; anything else INTERNAL', () => {
    const init = Object.assign(new Error('Worker initialization failure: EMFILE'), {
      code: 'ERR_WORKER_INIT_FAILED',
    })
    expect(threadFailure(init)).toMatchObject({
      code: 'TOO_MANY_OPEN_FILES',
      message: expect.stringMatching(/ulimit -n/),
    })
    const pkg = new Error('Cannot read package config /x/piscina/package.json: too many open files')
    expect(threadFailure(pkg).code).toBe('TOO_MANY_OPEN_FILES')
    expect(threadFailure(new Error('boom')).code).toBe('INTERNAL')
  })
})
