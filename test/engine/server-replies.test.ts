import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { Network } from '../../src/net/network.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { PROTOCOL_ID, PROTOCOL_VERSION, type TransferMessage } from '../../src/protocol/messages.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { tempDir, writeFile } from '../support/files.ts'

const KiB = 1024

/** Every frame the server sends until it closes, grouped by the network read it arrived in. */
async function repliesByRead(
  stream: Awaited<ReturnType<Network['openStream']>>,
): Promise<TransferMessage[][]> {
  const decoder = new FrameDecoder()
  const reads: TransferMessage[][] = []
  for await (const data of stream.incoming) {
    decoder.push(data)
    const frames = [...decoder.frames()]
    if (frames.length > 0) reads.push(frames)
  }
  return reads
}

/**
 * The serving handler, driven by hand over a real stream: a reply's last frame and its `end`
 * leave in one write, so they arrive together, whatever `server.readAhead` is.
 */
describe.each([1, 4])('replies of the real serving handler, server.readAhead %i', (readAhead) => {
  let cleanup: () => Promise<void>
  let sender: Engine
  let client: Network
  let cid: Uint8Array
  let secret: Uint8Array | undefined

  beforeAll(async () => {
    let dir: string
    ;({ dir, cleanup } = await tempDir())
    // 3 chunks (64 KiB, 64 KiB, 54 KiB): each chunk frame with what follows it fits one yamux frame.
    sender = await Engine.create({
      workers: 1,
      chunking: { kind: 'fixed', size: 64 * KiB },
      codec: 'none',
      server: { readAhead },
    })
    client = await Network.create({})
    const src = join(dir, 'f.src')
    await writeFile(src, 182 * KiB, 'random')
    const ticket = decodeSwarmTicket((await sender.publish(src)).ticket)
    cid = ticket.cid
    secret = ticket.providers[0]!.secret
  })
  afterAll(async () => {
    await client.stop()
    await sender.stop()
    await cleanup()
  })

  it('pages and chunks end with `end`, each in the read of its last frame', async () => {
    const stream = await client.openStream(sender.peerId, sender.addresses, PROTOCOL_ID)
    const got = repliesByRead(stream)
    await stream.write([
      ...encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, codecs: ['none'], maxFrame: 1 << 20 }),
      ...encodeMessage({ type: 'get-pages', requestId: 1, cid, firstPage: 0, count: 1, secret }),
      ...encodeMessage({ type: 'get-chunks', requestId: 2, cid, ranges: [{ start: 0, end: 3 }], secret }),
    ])
    await stream.closeWrite()
    const reads = await got
    const frames = reads.flat()
    expect(frames.map((m) => (m.type === 'chunk' ? `chunk ${m.index}` : m.type))).toEqual([
      'hello',
      'page',
      'end',
      'chunk 0',
      'chunk 1',
      'chunk 2',
      'end',
    ])
    const readOf = (pick: (m: TransferMessage) => boolean) => reads.findIndex((r) => r.some(pick))
    expect(readOf((m) => m.type === 'page')).toBe(readOf((m) => m.type === 'end' && m.requestId === 1))
    expect(readOf((m) => m.type === 'chunk' && m.index === 2)).toBe(
      readOf((m) => m.type === 'end' && m.requestId === 2),
    )
  })
})
