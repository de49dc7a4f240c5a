import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { AbortedError, ConfigInvalidError, createEngine, InvalidArgumentError } from '../../src/index.ts'
import { useEngines } from '../support/engines.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

/** The members of each interface a source file declares, by the interface's name. */
async function interfaceMembers(path: string): Promise<Record<string, string[]>> {
  const text = await readFile(new URL(`../../${path}`, import.meta.url), 'utf8')
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest)
  const out: Record<string, string[]> = {}
  for (const s of source.statements) {
    if (!ts.isInterfaceDeclaration(s)) continue
    out[s.name.text] = s.members.flatMap((m) =>
      m.name !== undefined && ts.isIdentifier(m.name) ? [m.name.text] : [],
    )
  }
  return out
}

/** What a call gave: a synchronous throw, or the promise's settlement. */
async function outcome(call: () => unknown): Promise<{ sync: boolean; error: unknown }> {
  let p: unknown
  try {
    p = call()
  } catch (error) {
    return { sync: true, error }
  }
  try {
    await p
    return { sync: false, error: undefined }
  } catch (error) {
    return { sync: false, error }
  }
}

describe('the engine API checks its arguments and keeps callbacks out of the transfer', () => {
  const engines = useEngines({ listen: LOOPBACK, workers: 1 })

  it.each(['main', 'worker'] as const)(
    'arguments of the wrong type are INVALID_ARGUMENT naming them, never a TypeError (thread: %s)',
    async (thread) => {
      // createEngine, as Engine.create (useEngines) runs in this thread whatever `thread` says.
      const e = await createEngine({ listen: LOOPBACK, workers: 1, thread })
      const dest = join(engines.dir, 'x.out')
      const cases: Array<[string, () => unknown, RegExp]> = [
        ['fetch(42)', () => e.fetch(42 as never, dest), /the ticket must be a string/],
        ['fetch dest 42', () => e.fetch('haul1x', 42 as never), /fetch: dest must be a path/],
        ['fetch(undefined)', () => e.fetch(undefined as never, dest), /the ticket must be a string/],
        ['fetch dest undefined', () => e.fetch('haul1x', undefined as never), /fetch: dest must be a path/],
        [
          'fetch dest ending in /',
          () => e.fetch('haul1x', `${engines.dir}/sub/`),
          /ends in a separator, which names a folder/,
        ],
        ['fetch dest with NUL', () => e.fetch('haul1x', join(engines.dir, 'a\0b')), /must not contain a NUL/],
        [
          'fetch signal {}',
          () => e.fetch('haul1x', dest, { signal: {} as never }),
          /signal must be an AbortSignal/,
        ],
        [
          'fetch onProgress 5',
          () => e.fetch('haul1x', dest, { onProgress: 5 as never }),
          /onProgress must be a function/,
        ],
        [
          'fetch providers "abc"',
          () => e.fetch('haul1x', dest, { providers: 'abc' as never }),
          /providers must be an array/,
        ],
        [
          'fetch { overwrit: true } (a typo)',
          () => e.fetch('haul1x', dest, { overwrit: true } as never),
          /fetch has no option overwrit: it takes .*overwrite/,
        ],
        [
          'fetch maxBytesPerSec -1',
          () => e.fetch('haul1x', dest, { maxBytesPerSec: -1 }),
          /fetch option maxBytesPerSec must be a number of bytes per second, at least 1/,
        ],
        [
          "fetch priority 'urgent'",
          () => e.fetch('haul1x', dest, { priority: 'urgent' as never }),
          /fetch option priority must be 'low', 'normal' or 'high', got "urgent"/,
        ],
        [
          "fetchCollection overwrite 'yes'",
          () => e.fetchCollection('haul1x', dest, { overwrite: 'yes' as never }),
          /fetchCollection option overwrite must be true or false/,
        ],
        [
          'publish { pubic: true }',
          () => e.publish('/etc/hostname', { pubic: true } as never),
          /publish has no option pubic/,
        ],
        ['publish(5)', () => e.publish(5 as never), /publish: path must be a path/],
        ['publish(undefined)', () => e.publish(undefined as never), /publish: path must be a path/],
        ['publishCollection([1])', () => e.publishCollection([1] as never), /each path must be a path/],
        ['seed(null)', () => e.seed(null as never), /seed: dest must be a path/],
        ['seed(dir/)', () => e.seed(`${engines.dir}/`), /seed: dest .* ends in a separator/],
        ['fetchCollection(7)', () => e.fetchCollection(7 as never, dest), /the ticket must be a string/],
        ['unpublish(undefined)', () => e.unpublish(undefined as never), /content id must be 32 bytes/],
        ["unpublish('bnot-an-id')", () => e.unpublish('bnot-an-id'), /a content id is "b" followed by/],
      ]
      try {
        for (const [what, call, message] of cases) {
          const { error } = await outcome(call)
          expect(error, what).toBeInstanceOf(InvalidArgumentError)
          expect((error as Error).message, what).toMatch(message)
        }
      } finally {
        await e.stop()
      }
    },
  )

  it.each(['main', 'worker'] as const)(
    'providers, given to fetch or to addProvider, are checked alike: INVALID_ARGUMENT naming the wrong part, thrown at once (thread: %s)',
    async (thread) => {
      const sender = await engines.engine()
      const src = join(engines.dir, `providers-${thread}.bin`)
      await writeFile(src, Buffer.alloc(1000, 3))
      const { ticket } = await sender.publish(src)
      // createEngine, as Engine.create (useEngines) runs in this thread whatever `thread` says.
      const e = await createEngine({ listen: LOOPBACK, workers: 1, thread })
      const peerId = sender.peerId
      const good = { peerId, addrs: ['/ip4/127.0.0.1/tcp/1'] }
      const cases: Array<[string, unknown, RegExp]> = [
        ['undefined', undefined, /must be an object \{ peerId, addrs, secret\? \}, got undefined/],
        ['null', null, /must be an object .*, got null/],
        ["'x'", 'x', /must be an object .*, got "x"/],
        ['{}', {}, /peerId must be a peer id \(a string\), got undefined/],
        ["peerId 'nope'", { peerId: 'nope', addrs: good.addrs }, /not a peer id: "nope"/],
        ["addrs ['garbage']", { peerId, addrs: ['garbage'] }, /not a multiaddr: "garbage"/],
        ['addrs []', { peerId, addrs: [] }, /addrs must hold 1\.\.16 addresses .*got 0/],
        [
          'addrs of another peer',
          { peerId, addrs: [`/ip4/127.0.0.1/tcp/1/p2p/${e.peerId}`] },
          /belongs to peer/,
        ],
        ["secret 'abc'", { ...good, secret: 'abc' }, /secret must be 16 bytes .*got "abc"/],
        ['a 3-byte secret', { ...good, secret: new Uint8Array(3) }, /secret must be 16 bytes/],
      ]
      try {
        const dest = join(engines.dir, `providers-${thread}.out`)
        const handle = e.fetch(ticket, dest)
        for (const [what, provider, message] of cases) {
          const added = await outcome(() => handle.addProvider(provider as never))
          expect(added.sync, `addProvider(${what}) throws`).toBe(true)
          expect(added.error, `addProvider(${what})`).toBeInstanceOf(InvalidArgumentError)
          expect((added.error as Error).message, `addProvider(${what})`).toMatch(/^addProvider: the provider/)
          expect((added.error as Error).message, `addProvider(${what})`).toMatch(message)
          const fetched = await outcome(() => e.fetch(ticket, dest, { providers: [good, provider] as never }))
          expect(fetched.sync, `fetch providers [good, ${what}] throws`).toBe(true)
          expect(fetched.error, `fetch providers [good, ${what}]`).toBeInstanceOf(InvalidArgumentError)
          expect((fetched.error as Error).message, `fetch providers [good, ${what}]`).toMatch(
            /^fetch option providers\[1\]/,
          )
          expect((fetched.error as Error).message, `fetch providers [good, ${what}]`).toMatch(message)
        }
        const many = await outcome(() => e.fetch(ticket, dest, { providers: Array(17).fill(good) }))
        expect(many.error).toBeInstanceOf(InvalidArgumentError)
        expect((many.error as Error).message).toMatch(/names 17 peers, more than the 16 a fetch takes/)
        // A right one is taken, and the fetch completes.
        handle.addProvider({ ...good, secret: new Uint8Array(16) })
        expect((await handle.result).bytes).toBe(1000)
      } finally {
        await e.stop()
      }
    },
  )

  it.each(['main', 'worker'] as const)(
    'an engine that listens nowhere fetches, and its publish, publishCollection and seed are CONFIG_INVALID saying to give a listen address, leaving nothing served (thread: %s)',
    async (thread) => {
      const sender = await engines.engine()
      const src = join(engines.dir, `nowhere-${thread}.bin`)
      await writeFile(src, Buffer.alloc(5000, 4))
      const { ticket } = await sender.publish(src)
      const e = await createEngine({ listen: [], workers: 1, thread })
      try {
        const dest = join(engines.dir, `nowhere-${thread}.out`)
        expect((await e.fetch(ticket, dest).result).bytes).toBe(5000)
        for (let i = 0; i < 2; i++) {
          const calls: Array<[string, () => Promise<unknown>]> = [
            ['publish', () => e.publish(src)],
            ['publish (public)', () => e.publish(dest, { public: true })],
            ['publishCollection', () => e.publishCollection([src, dest])],
            ['seed', () => e.seed(dest)],
          ]
          for (const [what, call] of calls) {
            const { sync, error } = await outcome(call)
            expect(sync, what).toBe(false)
            expect(error, what).toBeInstanceOf(ConfigInvalidError)
            expect((error as Error).message, what).toMatch(/^listen: this engine listens on no address/)
            expect((error as Error).message, what).toMatch(/create the engine with a listen address/)
            expect(e.stats().serving.contents, `${what}: nothing served`).toBe(0)
          }
        }
      } finally {
        await e.stop()
      }
    },
  )

  it.each(['main', 'worker'] as const)(
    "an option a method does not take is refused listing exactly the options of the method's type (thread: %s)",
    async (thread) => {
      const e = await createEngine({ listen: LOOPBACK, workers: 1, thread })
      const dest = join(engines.dir, 'typo.out')
      const api = await interfaceMembers('src/engine/api-types.ts')
      const collection = await interfaceMembers('src/collection/fetch-collection.ts')
      const publish = [...api.PublishOptions!, ...api.SeedOptions!]
      const methods: Array<[string, () => unknown, string[]]> = [
        ['fetch', () => e.fetch('haul1x', dest, { typo: 1 } as never), api.FetchOptions!],
        [
          'fetchCollection',
          () => e.fetchCollection('haul1x', dest, { typo: 1 } as never),
          collection.CollectionFetchOptions!,
        ],
        ['publish', () => e.publish(dest, { typo: 1 } as never), publish],
        ['publishCollection', () => e.publishCollection(dest, { typo: 1 } as never), publish],
        ['seed', () => e.seed(dest, { typo: 1 } as never), api.SeedOptions!],
      ]
      try {
        for (const [what, call, members] of methods) {
          const { error } = await outcome(call)
          expect(error, what).toBeInstanceOf(InvalidArgumentError)
          const listed = (error as Error).message.match(
            new RegExp(`^${what} has no option typo: it takes (.*)$`),
          )
          expect(listed, `${what}: ${(error as Error).message}`).not.toBeNull()
          expect(listed![1]!.split(', ').sort(), what).toEqual([...members].sort())
        }
      } finally {
        await e.stop()
      }
    },
  )

  it('a ticket naming only this engine (its own publish) says the file is already here', async () => {
    const e = await engines.engine()
    const src = join(engines.dir, 'own.bin')
    await writeFile(src, Buffer.alloc(1000, 1))
    const { ticket } = await e.publish(src)
    expect(() => e.fetch(ticket, join(engines.dir, 'own.out'))).toThrow(
      /names only this engine .* already here/,
    )
  })

  it("progress: each figure reported once, and a settled transfer's progress() stays as it ended", async () => {
    const sender = await engines.engine()
    const receiver = await engines.engine()
    const src = join(engines.dir, 'frozen.bin')
    await writeFile(src, Buffer.alloc(4 * 1024 * 1024, 3))
    const { ticket } = await sender.publish(src)
    const seen: number[] = []
    // Chunks ~125 ms apart: the last one's report is not throttled away.
    const handle = receiver.fetch(ticket, join(engines.dir, 'frozen.out'), {
      maxBytesPerSec: 8 * 1024 * 1024,
      onProgress: (p) => seen.push(p.bytesDone),
    })
    await handle.result
    // Growing, each figure once, ending complete (the last chunk's report is the end's).
    expect(seen.at(-1)).toBe(4 * 1024 * 1024)
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    const first = handle.progress()
    await new Promise((r) => setTimeout(r, 300))
    expect(handle.progress()).toEqual(first)
    expect(first?.bytesDone).toBe(4 * 1024 * 1024)
  })

  it.each(['main', 'worker'] as const)(
    'methods that return a promise reject, never throw, also on a stopped engine (thread: %s)',
    async (thread) => {
      const e = await createEngine({ listen: LOOPBACK, workers: 1, thread })
      await e.stop()
      const dest = join(engines.dir, 'y.out')
      for (const [what, call] of [
        ['publish', () => e.publish('/etc/hostname')],
        ['publishCollection', () => e.publishCollection('/etc')],
        ['seed', () => e.seed(dest)],
        ['fetchCollection', () => e.fetchCollection('haul1x', dest)],
        ['publish(5)', () => e.publish(5 as never)],
      ] as const) {
        const { sync, error } = await outcome(call)
        expect(sync, what).toBe(false)
        expect(error, what).toBeInstanceOf(AbortedError)
      }
      // A garbage ticket, the engine running: a rejection too.
      const running = await engines.engine()
      const bad = await outcome(() => running.fetchCollection('garbage', dest))
      expect(bad.sync).toBe(false)
      expect(bad.error).toMatchObject({ code: 'TICKET_INVALID' })
    },
  )

  it("a caller's signal aborted while publishing: ABORTED, whatever part of the platform noticed it first", async () => {
    const e = await engines.engine()
    const folder = join(engines.dir, 'abort-walk')
    await mkdir(folder)
    for (let i = 0; i < 20; i++) await writeFile(join(folder, `f${i}`), Buffer.alloc(100_000, i))
    for (const signal of [AbortSignal.abort(), AbortSignal.timeout(1)]) {
      const { error } = await outcome(() => e.publishCollection(folder, { signal }))
      expect(error).toBeInstanceOf(AbortedError)
      const one = await outcome(() => e.publish(join(folder, 'f1'), { signal }))
      expect(one.error).toBeInstanceOf(AbortedError)
    }
  })

  it.each(['main', 'worker'] as const)(
    'a callback that throws (thread: %s): the transfer completes, the throw is a process warning',
    async (thread) => {
      const sender = await engines.engine()
      // createEngine, as Engine.create (useEngines) runs in this thread whatever `thread` says.
      const receiver = await createEngine({
        listen: LOOPBACK,
        workers: 1,
        dataDir: join(engines.dir, `cb-${thread}-data`),
        thread,
      })
      const src = join(engines.dir, `cb-${thread}.bin`)
      await writeFile(src, Buffer.alloc(3 * 1024 * 1024 + 5, 7))
      const { ticket } = await sender.publish(src, {
        onProgress: () => {
          throw new Error('boom in publish onProgress')
        },
      })
      const warnings: string[] = []
      const onWarning = (w: Error): void => {
        if (w.name === 'HaulCallbackWarning') warnings.push(w.message)
      }
      process.on('warning', onWarning)
      try {
        const dest = join(engines.dir, `cb-${thread}.out`)
        const r = await receiver.fetch(ticket, dest, {
          onProgress: () => {
            throw new Error('boom in onProgress')
          },
        }).result
        expect(r.bytes).toBe(3 * 1024 * 1024 + 5)
        expect(Buffer.compare(await readFile(dest), await readFile(src))).toBe(0)
        await new Promise((r) => setTimeout(r, 50))
      } finally {
        process.off('warning', onWarning)
        await receiver.stop()
      }
      // With thread: 'worker' too: the callback runs in the caller's thread, and warns there.
      expect(warnings.some((w) => /onProgress callback threw.*Error: boom in onProgress/.test(w))).toBe(true)
    },
  )

  it.each(['main', 'worker'] as const)(
    'an onServe listener that throws (thread: %s): the peer is served, the others still hear, the throw is a process warning',
    async (thread) => {
      const receiver = await engines.engine()
      // createEngine, as Engine.create (useEngines) runs in this thread whatever `thread` says.
      const sender = await createEngine({
        listen: LOOPBACK,
        workers: 1,
        dataDir: join(engines.dir, `serve-cb-${thread}-data`),
        thread,
      })
      const warnings: string[] = []
      const onWarning = (w: Error): void => {
        if (w.name === 'HaulCallbackWarning') warnings.push(w.message)
      }
      process.on('warning', onWarning)
      try {
        const src = join(engines.dir, `serve-cb-${thread}.bin`)
        await writeFile(src, Buffer.alloc(1024 * 1024 + 3, 9))
        sender.onServe(() => {
          throw new Error('boom in onServe')
        })
        const heard: string[] = []
        sender.onServe((e) => heard.push(e.type))
        const { ticket } = await sender.publish(src)
        const dest = join(engines.dir, `serve-cb-${thread}.out`)
        await receiver.fetch(ticket, dest).result
        expect(Buffer.compare(await readFile(dest), await readFile(src))).toBe(0)
        await new Promise((r) => setTimeout(r, 50))
        // The listener added after the throwing one heard the session all the same.
        expect(heard).toContain('content-requested')
      } finally {
        process.off('warning', onWarning)
        await sender.stop()
      }
      expect(warnings.filter((w) => /onServe callback threw.*Error: boom in onServe/s.test(w))).toHaveLength(
        1,
      )
    },
  )

  it('onServe takes a function', async () => {
    const e = await engines.engine()
    expect(() => e.onServe(5 as never)).toThrow(InvalidArgumentError)
  })
})
