import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { AbortedError, WIRE_CODES } from '../../src/errors.ts'
import { Network } from '../../src/net/network.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { PROTOCOL_ID, PROTOCOL_VERSION, type TransferMessage } from '../../src/protocol/messages.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const MiB = 1024 * 1024
const hello = (): Uint8Array[] =>
  encodeMessage({ type: 'hello', version: 1, codecs: ['none'], maxFrame: 1 << 20 })

function frame(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length)
  new DataView(out.buffer).setUint32(0, 1 + body.length)
  out[4] = type
  out.set(body, 5)
  return out
}

/** Everything the server says on the stream until it closes it. */
async function replies(stream: Awaited<ReturnType<Network['openStream']>>): Promise<TransferMessage[]> {
  const decoder = new FrameDecoder()
  const out: TransferMessage[] = []
  try {
    for await (const data of stream.incoming) {
      decoder.push(data)
      for (const m of decoder.frames()) out.push(m)
    }
  } catch {
    // a reset after the error frame is an acceptable way to be cut off
  }
  return out
}

describe('hostile bytes against the real serving handler', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let attacker: Network
  let ticket: string
  let src: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    sender = await Engine.create({ workers: 1 })
    attacker = await Network.create({})
    src = join(dir, 'f.src')
    await writeFile(src, 2 * MiB + 5, 'random')
    ticket = (await sender.publish(src)).ticket
  })
  afterAll(async () => {
    await attacker.stop()
    await sender.stop()
    await cleanup()
  })

  const cases: Array<[string, () => Uint8Array[], keyof typeof WIRE_CODES]> = [
    ['an unknown message type', () => [...hello(), frame(0x7f, new Uint8Array(4))], 'UNKNOWN_MESSAGE_TYPE'],
    [
      'an oversize length prefix',
      () => [...hello(), Uint8Array.of(0xff, 0xff, 0xff, 0xf0, 0x15)],
      'FRAME_TOO_LARGE',
    ],
    ['a request before hello', () => [frame(0x20, new Uint8Array(4))], 'PROTOCOL_VIOLATION'],
    [
      'a truncated get-chunks body',
      () => [...hello(), frame(0x14, new Uint8Array(10))],
      'PROTOCOL_VIOLATION',
    ],
    [
      'a bad protocol version',
      () =>
        encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, codecs: [], maxFrame: 1 << 20 }).map(
          (b) => {
            const c = Uint8Array.from(b)
            c[5] = 99 // the version field
            return c
          },
        ),
      'UNSUPPORTED_VERSION',
    ],
  ]

  for (const [name, bytes, code] of cases) {
    it(`${name}: typed error frame (${code}), stream closed, node keeps serving`, async () => {
      const stream = await attacker.openStream(sender.peerId, sender.addresses, PROTOCOL_ID)
      const got = replies(stream)
      await stream.write(bytes())
      await stream.closeWrite().catch(() => {})
      const msgs = await got
      const err = msgs.find((m) => m.type === 'error')
      expect(err, JSON.stringify(msgs)).toBeDefined()
      expect(err).toMatchObject({ type: 'error', requestId: 0, code: WIRE_CODES[code] })
    })
  }

  it('a truncated frame at end of stream is answered with FRAME_TRUNCATED', async () => {
    const stream = await attacker.openStream(sender.peerId, sender.addresses, PROTOCOL_ID)
    const got = replies(stream)
    await stream.write([...hello(), frame(0x21, new Uint8Array(4)).subarray(0, 7)])
    await stream.closeWrite()
    const msgs = await got
    expect(msgs.find((m) => m.type === 'error')).toMatchObject({ code: WIRE_CODES.FRAME_TRUNCATED })
  })

  type RawStream = Awaited<ReturnType<Network['openStream']>>
  type Content = { readonly cid: Uint8Array; readonly secret: Uint8Array | undefined }
  /**
   * Publishes a random file of `mib` MiB, opens a raw stream to the sender, sends hello (8 MiB
   * frames) and the frames `open(content)` makes, and records every reply until `onReply` (which
   * may write more) returns true. `content`: the content id and the ticket's secret, as a request
   * carries them.
   */
  async function converse(
    name: string,
    mib: number,
    open: (content: Content) => Uint8Array[],
    onReply: (m: TransferMessage, stream: RawStream, content: Content) => Promise<boolean>,
  ): Promise<TransferMessage[]> {
    const { decodeSwarmTicket } = await import('../../src/ticket/multi-ticket.ts')
    const file = join(dir, name)
    await writeFile(file, mib * MiB, 'random')
    const ticket = decodeSwarmTicket((await sender.publish(file)).ticket)
    const content: Content = { cid: ticket.cid, secret: ticket.providers[0]!.secret }
    const stream = await attacker.openStream(sender.peerId, sender.addresses, PROTOCOL_ID)
    const decoder = new FrameDecoder()
    const seen: TransferMessage[] = []
    const reading = (async () => {
      for await (const data of stream.incoming) {
        decoder.push(data)
        for (const m of decoder.frames()) {
          seen.push(m)
          if (await onReply(m, stream, content)) return
        }
      }
    })()
    const bigHello = encodeMessage({ type: 'hello', version: 1, codecs: ['none'], maxFrame: 8 << 20 })
    await stream.write([...bigHello, ...open(content)])
    await reading
    await stream.close()
    return seen
  }

  it('cancel stops a get-chunks mid-way and the stream keeps answering', async () => {
    const seen = await converse(
      'big.src',
      48,
      (c) => encodeMessage({ type: 'get-chunks', requestId: 1, ...c, ranges: [{ start: 0, end: 48 }] }),
      async (m, stream, c) => {
        if (m.type === 'chunk' && m.index === 0) {
          await stream.write(encodeMessage({ type: 'cancel', requestId: 1 }))
          await stream.write(encodeMessage({ type: 'get-header', requestId: 2, ...c }))
        }
        return m.type === 'header'
      },
    )
    const chunks = seen.filter((m) => m.type === 'chunk').length
    expect(seen.some((m) => m.type === 'end' && m.requestId === 1)).toBe(false)
    expect(chunks).toBeLessThan(48)
    expect(seen.at(-1)).toMatchObject({ type: 'header', requestId: 2 })
  })

  it('pipelined get-chunks are answered in order; one cancelled while queued sends nothing and keeps no budget', async () => {
    const get = (c: Content, requestId: number, start: number, end: number) =>
      encodeMessage({ type: 'get-chunks', requestId, ...c, ranges: [{ start, end }] })
    const seen = await converse(
      'pipelined.src',
      12,
      (c) => [...get(c, 1, 0, 4), ...get(c, 2, 4, 8), ...get(c, 3, 8, 12)],
      async (m, stream) => {
        // Request 2's first chunks are being read ahead by now (request 1 has 3 chunks left).
        if (m.type === 'chunk' && m.requestId === 1 && m.index === 0) {
          await stream.write(encodeMessage({ type: 'cancel', requestId: 2 }))
        }
        return m.type === 'end' && m.requestId === 3
      },
    )
    const order = seen.filter((m) => m.type === 'chunk').map((m) => `${m.requestId}:${m.index}`)
    expect(order).toEqual(['1:0', '1:1', '1:2', '1:3', '3:8', '3:9', '3:10', '3:11'])
    expect(seen.some((m) => m.type === 'end' && m.requestId === 2)).toBe(false)
    // Every lease of request 2's read-ahead came back: only idle recycled buffers hold budget.
    await expect.poll(() => sender.stats().memory.workBytes, { timeout: 5000 }).toBe(0)
  })

  it('after all that, an honest receiver still gets the file verified', async () => {
    const receiver = await Engine.create({ workers: 1 })
    try {
      const r = await receiver.fetch(ticket, join(dir, 'f.out')).result
      expect(r.bytes).toBe(2 * MiB + 5)
      expect(await sha256File(join(dir, 'f.out'))).toBe(await sha256File(src))
    } finally {
      await receiver.stop()
    }
  })
})

describe('cancellation', () => {
  it('aborting mid-transfer rejects with AbortedError and leaves no stream or buffer behind', async () => {
    const { dir, cleanup } = await tempDir()
    const sender = await Engine.create({ workers: 1 })
    const receiver = await Engine.create({ workers: 1 })
    try {
      const src = join(dir, 'big.src')
      await writeFile(src, 48 * MiB, 'random')
      const { ticket } = await sender.publish(src)
      const ac = new AbortController()
      const handle = receiver.fetch(ticket, join(dir, 'big.out'), {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.bytesDone > 4 * MiB) ac.abort()
        },
      })
      const err = await handle.result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(AbortedError)
      expect(handle.status()).toBe('cancelled')
      expect(receiver.stats().memory.workBytes).toBe(0)
      // Its stream is closed, not reset (its requests cancelled first): within timeouts.closeMs.
      await expect.poll(() => receiver.stats().network.openStreams, { timeout: 5000 }).toBe(0)
      await expect.poll(() => sender.stats().network.openStreams, { timeout: 5000 }).toBe(0)
      await expect.poll(() => sender.stats().memory.workBytes, { timeout: 5000 }).toBe(0)
      expect(receiver.stats().transfers.unfinished).toBe(0)
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
      await cleanup()
    }
  })
})
