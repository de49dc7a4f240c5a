import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HaulError } from '../../src/errors.ts'
import { Network } from '../../src/net/network.ts'
import type { FrameStream } from '../../src/net/stream-io.ts'
import { FrameDecoder } from '../../src/protocol/decoder.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { PROTOCOL_VERSION, type TransferMessage } from '../../src/protocol/messages.ts'
import { RemoteSession } from '../../src/session/remote-session.ts'
import type { Codec } from '../../src/types.ts'

const PROTOCOL = '/haul/test/remote-session'
const CID = new Uint8Array(32).fill(7)
const HEADER = Uint8Array.of(1, 2, 3)

/** What the scripted peer does once it has read `expect` frames from the session (then it closes). */
type Script = (received: TransferMessage[], stream: FrameStream) => Promise<void>

/**
 * Two real libp2p nodes; the serving side runs a script instead of haul's server, so the test
 * decides what the session sees and when.
 */
describe('RemoteSession: hello goes out with the first request', () => {
  let server: Network
  let client: Network
  let script: { expect: number; run: Script }
  let seen: TransferMessage[] = []

  beforeAll(async () => {
    server = await Network.create({})
    client = await Network.create({})
    await server.handle(PROTOCOL, async (stream) => {
      const decoder = new FrameDecoder()
      const received: TransferMessage[] = []
      const iterator = stream.incoming[Symbol.asyncIterator]()
      while (received.length < script.expect) {
        const next = await iterator.next()
        if (next.done) return
        decoder.push(next.value)
        for (const m of decoder.frames()) received.push(m)
      }
      seen = received
      await script.run(received, stream)
      await stream.close()
    })
  })
  afterAll(async () => {
    await client.stop()
    await server.stop()
  })

  const hello = (version = PROTOCOL_VERSION, maxFrame = 1 << 20): Uint8Array[] => [
    // encodeMessage refuses a version it does not speak; a newer peer's hello is built by hand.
    ...encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, codecs: ['none'], maxFrame }).map((b) => {
      const out = b.slice()
      if (out[4] === 0x01) new DataView(out.buffer).setUint16(5, version)
      return out
    }),
  ]
  const header = (requestId: number): Uint8Array[] =>
    encodeMessage({ type: 'header', requestId, header: HEADER })

  async function getHeader(
    codecs?: readonly Codec[],
  ): Promise<{ session: RemoteSession; result: Promise<Uint8Array> }> {
    const stream = await client.openStream(server.peerId, server.addresses, PROTOCOL)
    const session = RemoteSession.start(stream, {
      maxFrame: 1 << 20,
      requestTimeoutMs: 5000,
      ...(codecs === undefined ? {} : { codecs }),
    })
    let got: Uint8Array | undefined
    const result = session
      .request(
        (requestId) => ({ type: 'get-header', requestId, cid: CID }),
        (msg) => {
          if (msg.type !== 'header') throw new Error(`got ${msg.type}`)
          got = msg.header
          return 'done'
        },
      )
      .then(() => got!)
    return { session, result }
  }

  it('sends the request before the peer has said hello, and learns its frame limit from the answer', async () => {
    // The peer answers nothing until it holds both frames: without pipelining this would hang.
    script = {
      expect: 2,
      run: async (received, stream) => {
        const id = (received[1] as Extract<TransferMessage, { type: 'get-header' }>).requestId
        await stream.write([...hello(PROTOCOL_VERSION, 3 << 20), ...header(id)])
      },
    }
    const { session, result } = await getHeader()
    expect(session.remoteMaxFrame).toBeUndefined()
    expect(await result).toEqual(HEADER)
    expect(seen.map((m) => m.type)).toEqual(['hello', 'get-header'])
    expect(session.remoteMaxFrame).toBe(3 << 20)
    await session.close()
  })

  it('a peer that answers with another protocol version fails the request with UNSUPPORTED_VERSION', async () => {
    script = {
      expect: 2,
      run: async (_received, stream) => {
        await stream.write(hello(PROTOCOL_VERSION + 1))
      },
    }
    const { session, result } = await getHeader()
    await expect(result).rejects.toMatchObject({ code: 'UNSUPPORTED_VERSION' })
    expect(session.closed).toBe(true)
  })

  it('a peer that answers before saying hello is a protocol violation', async () => {
    script = {
      expect: 2,
      run: async (received, stream) => {
        const id = (received[1] as Extract<TransferMessage, { type: 'get-header' }>).requestId
        await stream.write(header(id))
      },
    }
    const { result } = await getHeader()
    const err = (await result.catch((e) => e)) as HaulError
    expect(err.code).toBe('PROTOCOL_VIOLATION')
    expect(err.message).toMatch(/expected hello/)
  })

  it('offers the codecs it was given, and a chunk in another is a protocol violation', async () => {
    script = {
      expect: 2,
      run: async (received, stream) => {
        const requestId = (received[1] as Extract<TransferMessage, { type: 'get-header' }>).requestId
        const payload = Uint8Array.of(1, 2, 3, 4)
        const chunk = encodeMessage({
          type: 'chunk',
          requestId,
          index: 0,
          codec: 'zstd',
          rawLength: 8,
          payload,
        })
        await stream.write([...hello(), ...chunk])
      },
    }
    const { session, result } = await getHeader(['none'])
    const err = (await result.catch((e) => e)) as HaulError
    expect(seen[0]).toMatchObject({ type: 'hello', codecs: ['none'] })
    expect(err.code).toBe('PROTOCOL_VIOLATION')
    expect(err.message).toMatch(/chunk in zstd, which this receiver's hello did not offer \(none\)/)
    expect(session.closed).toBe(true)
  })

  /**
   * A get-chunks request answered with one 400 KiB chunk frame written `slice` bytes at a time,
   * `everyMs` apart, with a 300 ms request timeout: the bytes it received, or its error.
   */
  async function slowChunk(slice: number, everyMs: number): Promise<number | HaulError> {
    const size = 400 * 1024
    script = {
      expect: 2,
      run: async (received, stream) => {
        const requestId = (received[1] as Extract<TransferMessage, { type: 'get-chunks' }>).requestId
        const payload = new Uint8Array(size).fill(5)
        const chunk = encodeMessage({
          type: 'chunk',
          requestId,
          index: 0,
          codec: 'none',
          rawLength: size,
          payload,
        })
        const frame = Buffer.concat([...hello(), ...chunk, ...encodeMessage({ type: 'end', requestId })])
        try {
          for (let at = 0; at < frame.length; at += slice) {
            await stream.write([frame.subarray(at, at + slice)])
            await new Promise((r) => setTimeout(r, everyMs))
          }
        } catch {
          // The session gave up and reset the stream.
        }
      },
    }
    const stream = await client.openStream(server.peerId, server.addresses, PROTOCOL)
    const session = RemoteSession.start(stream, {
      maxFrame: 1 << 20,
      requestTimeoutMs: 300,
      codecs: ['none'],
    })
    let bytes = 0
    const result = await session
      .request(
        (requestId) => ({ type: 'get-chunks', requestId, cid: CID, ranges: [{ start: 0, end: 1 }] }),
        (msg) => {
          if (msg.type === 'chunk') bytes += msg.payload.length
          return msg.type === 'end' ? 'done' : 'more'
        },
      )
      .then(
        () => bytes,
        (err: HaulError) => err,
      )
    await session.close()
    return result
  }

  it('a chunk frame still arriving on a slow link keeps its request waiting past the request timeout', async () => {
    // 400 KiB in 80 KiB slices 200 ms apart: ~1 s for one frame, the timeout 300 ms.
    expect(await slowChunk(80 * 1024, 200)).toBe(400 * 1024)
  })

  it('a peer dripping a frame a few bytes at a time still times out', async () => {
    const err = await slowChunk(1000, 50)
    expect(err).toMatchObject({ code: 'TIMEOUT' })
  })

  it('a peer that hangs up before saying hello fails the request with STREAM_CLOSED', async () => {
    script = { expect: 2, run: async () => {} }
    const { result } = await getHeader()
    const err = (await result.catch((e) => e)) as HaulError
    expect(err.code).toBe('STREAM_CLOSED')
    expect(err.message).toMatch(/before saying hello/)
  })
})
