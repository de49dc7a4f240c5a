/**
 * What a ticket grants (src/serve/access.ts): content is served only to requests presenting the
 * secret its ticket carries, and a request without it, or with a wrong one, cannot be told from
 * one for content the peer does not have. Real engines, real files, and raw requests on the wire
 * where the test must see exactly what the server answers.
 */
import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { Engine, engineInternals } from '../../src/engine/engine.ts'
import { ContentNotFoundError, WIRE_CODES } from '../../src/errors.ts'
import { Network } from '../../src/net/network.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { PROTOCOL_ID, PROTOCOL_VERSION, type TransferMessage } from '../../src/protocol/messages.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import type { ServeEvent } from '../../src/serve/serve-events.ts'
import { decodeSwarmTicket, encodeSwarmTicket, type Provider } from '../../src/ticket/multi-ticket.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { base32Decode } from '../../src/util/base32.ts'
import { writePartialCopy } from '../fetch/partial-copy.ts'
import { failure } from '../support/errors.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { legacyV2, ticketText } from '../support/tickets.ts'
import { treeOf } from '../support/tree.ts'

const KiB = 1024
const chunking = { kind: 'fixed', size: 64 * KiB } as const

type Ask = (requestId: number, cid: Uint8Array, secret: Uint8Array | undefined) => TransferMessage
/** Each request type, as a prober or a receiver builds it. */
const REQUESTS: Array<[string, Ask]> = [
  ['get-header', (requestId, cid, secret) => ({ type: 'get-header', requestId, cid, secret })],
  [
    'get-pages',
    (requestId, cid, secret) => ({ type: 'get-pages', requestId, cid, firstPage: 0, count: 1, secret }),
  ],
  [
    'get-chunks',
    (requestId, cid, secret) => ({
      type: 'get-chunks',
      requestId,
      cid,
      ranges: [{ start: 0, end: 2 }],
      secret,
    }),
  ],
  [
    'get-have',
    (requestId, cid, secret) => ({ type: 'get-have', requestId, cid, start: 0, count: 4, secret }),
  ],
]

/** Sends `requests` on a fresh stream to `to`, closes our side, and returns every reply but hello. */
async function ask(
  net: Network,
  to: Provider,
  requests: readonly TransferMessage[],
): Promise<TransferMessage[]> {
  const stream = await net.openStream(to.peerId, [...to.addrs], PROTOCOL_ID)
  const decoder = new FrameDecoder()
  const out: TransferMessage[] = []
  const reading = (async () => {
    for await (const data of stream.incoming) {
      decoder.push(data)
      for (const m of decoder.frames()) if (m.type !== 'hello') out.push(m)
    }
  })()
  const hello = encodeMessage({
    type: 'hello',
    version: PROTOCOL_VERSION,
    codecs: ['none'],
    maxFrame: 1 << 20,
  })
  await stream.write([...hello, ...requests.flatMap((r) => encodeMessage(r))])
  await stream.closeWrite()
  await reading
  return out
}

const flipped = (secret: Uint8Array): Uint8Array => {
  const wrong = Uint8Array.from(secret)
  wrong[7]! ^= 0x40
  return wrong
}

describe('what a ticket grants, between real engines', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let receiver: Engine
  let prober: Network
  let src: string
  let digest: string
  const served: ServeEvent[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-access-'))
    sender = await Engine.create({ workers: 1, chunking })
    sender.onServe((e) => served.push(e))
    receiver = await Engine.create({ workers: 1 })
    prober = await Network.create({})
    src = join(dir, 'secret.bin')
    await writeFile(src, 300 * KiB + 7, 'random')
    digest = await sha256File(src)
  })
  afterAll(async () => {
    await Promise.allSettled([sender.stop(), receiver.stop(), prober.stop()])
    await cleanup()
  })

  it('without the secret, with a wrong one, or for unknown content: the same error frame, for every request', async () => {
    const { ticket } = await sender.publish(src)
    const { cid, providers } = decodeSwarmTicket(ticket)
    const peer = providers[0]!
    const secret = peer.secret!
    expect(secret).toHaveLength(16)
    const unknown = new Uint8Array(32).fill(0x5a)
    served.length = 0
    for (const [type, build] of REQUESTS) {
      const probes: Array<[string, Uint8Array, Uint8Array | undefined]> = [
        ['no secret', cid, undefined],
        ['a wrong secret', cid, flipped(secret)],
        ['unknown content', unknown, undefined],
        ['unknown content with the secret', unknown, secret],
      ]
      const answers = await Promise.all(probes.map(([, c, s]) => ask(prober, peer, [build(1, c, s)])))
      for (const [k, replies] of answers.entries()) {
        expect(replies, `${type}, ${probes[k]![0]}`).toEqual(answers[0])
      }
      expect(answers[0]).toEqual([
        { type: 'error', requestId: 1, code: WIRE_CODES.CONTENT_NOT_FOUND, message: expect.any(String) },
      ])
    }
    // Refused requests are not reported as content asked for: nothing of it was given.
    expect(served.filter((e) => e.type === 'content-requested')).toEqual([])

    // With the secret, every request is answered.
    const granted = await ask(
      prober,
      peer,
      REQUESTS.map(([, build], i) => build(i + 1, cid, secret)),
    )
    expect(granted.filter((m) => m.type === 'error')).toEqual([])
    expect(new Set(granted.map((m) => m.type))).toEqual(new Set(['header', 'page', 'chunk', 'have', 'end']))
    expect(served.some((e) => e.type === 'content-requested')).toBe(true)
  })

  it('a ticket stripped of its secret fetches nothing; the ticket itself arrives byte-identical', async () => {
    const { ticket } = await sender.publish(src)
    const t = decodeSwarmTicket(ticket)
    const stripped = encodeSwarmTicket({
      ...t,
      providers: t.providers.map(({ peerId, addrs }) => ({ peerId, addrs })),
    })
    const err = await failure(receiver.fetch(stripped, join(dir, 'stripped.out')).result)
    expect(err).toBeInstanceOf(ContentNotFoundError)
    const dest = join(dir, 'granted.out')
    await receiver.fetch(ticket, dest).result
    expect(await sha256File(dest)).toBe(digest)
  })

  it('a public publish needs no secret: its version 1, 2 and 3 tickets all fetch', async () => {
    const file = join(dir, 'public.bin')
    await writeFile(file, 200 * KiB, 'random', 2)
    const { ticket } = await sender.publish(file, { public: true })
    const { cid, providers } = decodeSwarmTicket(ticket)
    expect(providers[0]!.secret).toBeUndefined()
    // Written as a version 3 ticket without the secrets flag: what haul wrote before secrets.
    expect(base32Decode(ticket.slice(5))[1]! & 2).toBe(0)
    const tickets = [ticket, ticketText(legacyV2(cid, providers)), encodeTicket({ cid, ...providers[0]! })]
    for (const [k, text] of tickets.entries()) {
      const dest = join(dir, `public-${k}.out`)
      await receiver.fetch(text, dest).result
      expect(await sha256File(dest)).toBe(await sha256File(file))
    }
  })

  it('publishing again keeps the secret; unpublishing revokes it, and the next publish makes a new one', async () => {
    const file = join(dir, 'revoked.bin')
    await writeFile(file, 100 * KiB, 'random', 3)
    const first = await sender.publish(file)
    expect((await sender.publish(file)).ticket).toBe(first.ticket)
    sender.unpublish(first.index.cid)
    const second = await sender.publish(file)
    const secretOf = (t: string) => Buffer.from(decodeSwarmTicket(t).providers[0]!.secret!)
    expect(secretOf(second.ticket).equals(secretOf(first.ticket))).toBe(false)
    const err = await failure(receiver.fetch(first.ticket, join(dir, 'revoked.out')).result)
    expect(err).toBeInstanceOf(ContentNotFoundError)
    await receiver.fetch(second.ticket, join(dir, 'renewed.out')).result
    expect(await sha256File(join(dir, 'renewed.out'))).toBe(await sha256File(file))
    // Unpublished by its content id's text, as `haul send --json` prints it.
    sender.unpublish(cidToString(second.index.cid))
    const gone = await failure(receiver.fetch(second.ticket, join(dir, 'gone.out')).result)
    expect(gone).toBeInstanceOf(ContentNotFoundError)
  })

  it('with a data folder the secret outlives the engine: the next one gives the same ticket', async () => {
    const dataDir = join(dir, 'data')
    const before = await Engine.create({ workers: 1, dataDir, chunking })
    const { ticket, index } = await before.publish(src).finally(() => before.stop())
    const kept = await stat(join(dataDir, 'secrets', Buffer.from(index.cid).toString('hex')))
    expect(kept.size).toBe(16)
    expect(kept.mode & 0o777).toBe(0o600)
    const after = await Engine.create({ workers: 1, dataDir, chunking })
    try {
      expect((await after.publish(src)).ticket).toBe(ticket)
    } finally {
      await after.stop()
    }
  })

  it("a folder's manifest and pack answer only with its secret; a public folder's without", async () => {
    const folder = join(dir, 'folder')
    await mkdir(join(folder, 'sub'), { recursive: true })
    await writeFile(join(folder, 'a.bin'), 150 * KiB, 'random', 4)
    await writeFile(join(folder, 'sub', 'b.txt'), 3 * KiB, 'text', 5)
    const { ticket, index } = await sender.publishCollection(folder)
    const peer = decodeSwarmTicket(ticket).providers[0]!
    for (const cid of [index.cid, index.packCid]) {
      const [refused] = await ask(prober, peer, [{ type: 'get-header', requestId: 1, cid }])
      expect(refused).toMatchObject({ type: 'error', code: WIRE_CODES.CONTENT_NOT_FOUND })
      const [header] = await ask(prober, peer, [
        { type: 'get-header', requestId: 1, cid, secret: peer.secret },
      ])
      expect(header?.type).toBe('header')
    }
    const result = await receiver.fetchCollection(ticket, join(dir, 'folder.out'))
    expect(result.files).toBe(2)
    expect(await treeOf(join(dir, 'folder.out'))).toEqual(await treeOf(folder))

    sender.unpublish(index.cid)
    const open = await sender.publishCollection(folder, { public: true })
    const openPeer = decodeSwarmTicket(open.ticket).providers[0]!
    expect(openPeer.secret).toBeUndefined()
    const [header] = await ask(prober, openPeer, [
      { type: 'get-header', requestId: 1, cid: open.index.packCid },
    ])
    expect(header?.type).toBe('header')
  })

  it('a file and a folder holding only it share a content id: each ticket keeps working until its own unpublish', async () => {
    const folder = join(dir, 'alone')
    await mkdir(folder)
    const file = join(folder, 'only.bin')
    await writeFile(file, 180 * KiB, 'random', 6)
    const fileTicket = (await sender.publish(file)).ticket
    const { ticket: folderTicket, index } = await sender.publishCollection([file])
    const fileCid = decodeSwarmTicket(fileTicket).cid
    // What makes them collide: the folder's pack holds the file's bytes alone.
    expect(Buffer.from(index.packCid).equals(fileCid)).toBe(true)
    const secretOf = (t: string) => decodeSwarmTicket(t).providers[0]!.secret!
    const peer = decodeSwarmTicket(fileTicket).providers[0]!
    const headerWith = async (secret: Uint8Array | undefined) =>
      (await ask(prober, peer, [{ type: 'get-header', requestId: 1, cid: fileCid, secret }]))[0]?.type
    expect(await headerWith(secretOf(fileTicket))).toBe('header')
    expect(await headerWith(secretOf(folderTicket))).toBe('header')
    expect(await headerWith(undefined)).toBe('error')

    await receiver.fetch(fileTicket, join(dir, 'alone-1.bin')).result
    expect(await sha256File(join(dir, 'alone-1.bin'))).toBe(await sha256File(file))
    sender.unpublish(index.cid)
    expect(await headerWith(secretOf(folderTicket))).toBe('error')
    await receiver.fetch(fileTicket, join(dir, 'alone-2.bin')).result
    expect(await sha256File(join(dir, 'alone-2.bin'))).toBe(await sha256File(file))

    // The other way round: the folder's ticket outlives the file's unpublish.
    const again = await sender.publishCollection([file])
    sender.unpublish(fileCid)
    expect(await headerWith(secretOf(fileTicket))).toBe('error')
    await receiver.fetchCollection(again.ticket, join(dir, 'alone.out'))
    expect(await sha256File(join(dir, 'alone.out', 'only.bin'))).toBe(await sha256File(file))
    sender.unpublish(again.index.cid)
    expect(await headerWith(secretOf(again.ticket))).toBe('error')
  })

  it('a partial seed has a secret of its own (none when public): only its holders get a chunk', async () => {
    // A descriptor of its own: the one a publish of a just-written file keeps is removed once opened.
    const { pool, budget } = engineInternals(sender)
    const index = await indexFile(src, { chunking, pool, budget, descriptorPath: join(dir, 'half.haul') })
    // A copy each: one seed holds its destination (src/storage/dest-lock.ts).
    const [half, other] = [join(dir, 'half.bin'), join(dir, 'half-public.bin')]
    for (const h of [half, other]) await writePartialCopy(src, index, h, (i) => i % 2 === 0)
    const seeders = [await Engine.create({ workers: 1 }), await Engine.create({ workers: 1 })]
    try {
      const guarded = decodeSwarmTicket((await seeders[0]!.seed(half)).ticket).providers[0]!
      const open = decodeSwarmTicket((await seeders[1]!.seed(other, { public: true })).ticket).providers[0]!
      expect(guarded.secret).toHaveLength(16)
      expect(open.secret).toBeUndefined()
      const chunk0 = (secret?: Uint8Array): TransferMessage => ({
        type: 'get-chunks',
        requestId: 1,
        cid: index.cid,
        ranges: [{ start: 0, end: 1 }],
        secret,
      })
      const [refused] = await ask(prober, guarded, [chunk0()])
      expect(refused).toMatchObject({ type: 'error', code: WIRE_CODES.CONTENT_NOT_FOUND })
      for (const [peer, secret] of [
        [guarded, guarded.secret],
        [open, undefined],
      ] as const) {
        const replies = await ask(prober, peer, [chunk0(secret)])
        expect(replies.map((m) => m.type)).toEqual(['chunk', 'end'])
      }
    } finally {
      await Promise.all(seeders.map((e) => e.stop()))
    }
  })

  it('a fetch that shares what it has serves holders of the secret it fetched with, and no one else', async () => {
    // 16 chunks at 128 KiB/s: the fetch is still running (and sharing) when it is asked.
    const slow = await Engine.create({ workers: 1, chunking, limits: { uploadBytesPerSec: 128 * KiB } })
    const first = await Engine.create({ workers: 1, swarm: { haveIntervalMs: 200 } })
    const file = join(dir, 'shared.bin')
    await writeFile(file, 1024 * KiB, 'random', 6)
    try {
      const { ticket, index } = await slow.publish(file)
      const secret = decodeSwarmTicket(ticket).providers[0]!.secret!
      const h = first.fetch(ticket, join(dir, 'sharing.out'), { swarm: true })
      await expect.poll(() => h.progress()?.chunksDone ?? 0, { timeout: 20_000 }).toBeGreaterThan(0)
      const me: Provider = { peerId: first.peerId, addrs: first.addresses }
      const have = (s?: Uint8Array): TransferMessage => ({
        type: 'get-have',
        requestId: 1,
        cid: index.cid,
        start: 0,
        count: index.header.leafCount,
        secret: s,
      })
      const [refused] = await ask(prober, me, [have()])
      expect(refused).toMatchObject({ type: 'error', code: WIRE_CODES.CONTENT_NOT_FOUND })
      const [wrong] = await ask(prober, me, [have(flipped(secret))])
      expect(wrong).toEqual(refused)
      const granted = await ask(prober, me, [have(secret)])
      expect(granted.map((m) => m.type)).toEqual(['have', 'end'])
      expect(granted[0]).toMatchObject({ type: 'have', complete: false })
      h.cancel()
      await h.result.catch(() => {})
    } finally {
      await Promise.all([slow.stop(), first.stop()])
    }
  })
})
