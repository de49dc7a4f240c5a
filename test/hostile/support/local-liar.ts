import { randomBytes } from 'node:crypto'
import { Network } from '../../../src/net/network.ts'
import type { FrameStream } from '../../../src/net/stream-io.ts'
import { FrameDecoder } from '../../../src/protocol/decoder.ts'
import { encodeMessage } from '../../../src/protocol/encoder.ts'
import { PROTOCOL_ID, PROTOCOL_VERSION } from '../../../src/protocol/messages.ts'
import { encodeTicket } from '../../../src/ticket/ticket.ts'

export interface Liar {
  /** A ticket naming this peer and a content id of its own (which it never serves). */
  readonly ticket: string
  /** `get-header` requests answered so far. */
  readonly answered: number
  stop(): Promise<void>
}

/**
 * A peer of our own that speaks the wire format (encodeMessage) and answers every `get-header`
 * with an `error` frame of wire code `code` whose message is `message`: any text a peer may send.
 */
export async function startLiar(code: number, message: string): Promise<Liar> {
  const network = await Network.create({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const live = new Set<FrameStream>()
  let answered = 0
  await network.handle(PROTOCOL_ID, async (stream) => {
    live.add(stream)
    const decoder = new FrameDecoder()
    let greeted = false
    try {
      for await (const data of stream.incoming) {
        decoder.push(data)
        for (const m of decoder.frames()) {
          if (!greeted) {
            greeted = true
            await stream.write(
              encodeMessage({
                type: 'hello',
                version: PROTOCOL_VERSION,
                codecs: ['none'],
                maxFrame: 1 << 20,
              }),
            )
          } else if (m.type === 'get-header') {
            answered++
            await stream.write(encodeMessage({ type: 'error', requestId: m.requestId, code, message }))
          }
        }
      }
    } catch {
      // the receiver reset the stream
    } finally {
      live.delete(stream)
      await stream.close().catch(() => {})
    }
  })
  const ticket = encodeTicket({ cid: randomBytes(32), peerId: network.peerId, addrs: network.addresses })
  return {
    ticket,
    get answered() {
      return answered
    },
    async stop() {
      for (const s of live) s.abort(new Error('liar stopped'))
      await network.stop()
    },
  }
}
