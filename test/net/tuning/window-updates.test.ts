import { noise } from '@chainsafe/libp2p-noise'
import { type FrameHeader, yamux } from '@chainsafe/libp2p-yamux'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { Libp2p, Stream, StreamMuxerFactory } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it } from 'vitest'
import { libp2pLogger } from '../../../src/net/node.ts'
import { wrapStream } from '../../../src/net/stream-io.ts'
import { coalesceWindowUpdates } from '../../../src/net/tuning/window-updates.ts'
import { guardedMuxerFactory } from '../../../src/net/tuning/yamux-guard.ts'
import { echoStream, random, readAll, sha256 } from '../helpers.ts'

const KiB = 1024
const WINDOW = 256 * KiB
/** From the yamux spec; js-yamux exports these as types only. */
const FrameType = { Data: 0, WindowUpdate: 1 } as const
const FLAG_ACK = 0x2

/** A real js-yamux stream whose frames are recorded instead of sent. */
function stream(state: StreamState, coalesce = true): { s: YamuxStream; sent: FrameHeader[] } {
  const sent: FrameHeader[] = []
  const s = new YamuxStream({
    id: '1',
    streamId: 1,
    state,
    direction: 'inbound',
    log: libp2pLogger({})!.forComponent('test'),
    initialStreamWindowSize: WINDOW,
    maxStreamWindowSize: WINDOW,
    sendFrame: (header: FrameHeader) => {
      sent.push(header)
      return true
    },
    // No RTT measured: the window never grows, so every grant below is exact.
    getRTT: () => -1,
  })
  if (coalesce) coalesceWindowUpdates(s)
  return { s, sent }
}

function receive(s: YamuxStream, bytes: number): void {
  const header = { type: FrameType.Data, flag: 0, streamID: 1, length: bytes }
  s.handleData({ header, data: new Uint8ArrayList(new Uint8Array(bytes)) } as never)
}

const updates = (sent: FrameHeader[]) => sent.filter((h) => (h.type as number) === FrameType.WindowUpdate)

describe('coalesceWindowUpdates', () => {
  it('without it, js-yamux grants window after every data frame (why it exists)', () => {
    const { s, sent } = stream(StreamState.Established, false)
    for (let i = 0; i < 10; i++) receive(s, 16 * KiB)
    expect(updates(sent)).toHaveLength(10)
  })

  it('grants window only once half of it is used, and then all of what was used', () => {
    const { s, sent } = stream(StreamState.Established)
    for (let i = 0; i < 7; i++) receive(s, 16 * KiB)
    expect(updates(sent)).toHaveLength(0)
    receive(s, 16 * KiB)
    expect(updates(sent).map((h) => h.length)).toEqual([128 * KiB])
    for (let i = 0; i < 10; i++) receive(s, 16 * KiB)
    expect(updates(sent).map((h) => h.length)).toEqual([128 * KiB, 128 * KiB])
  })

  it('the remote is never left without half a window to send into', () => {
    const { s, sent } = stream(StreamState.Established)
    let granted = WINDOW
    let received = 0
    for (const size of [1, 100 * KiB, 27 * KiB + 5, 64 * KiB, 3, 120 * KiB, 90 * KiB, 7 * KiB]) {
      receive(s, size)
      received += size
      granted = WINDOW + updates(sent).reduce((n, h) => n + h.length, 0)
      expect(granted - received).toBeGreaterThanOrEqual(WINDOW / 2)
    }
  })

  it('still acknowledges a new inbound stream at once', () => {
    const { s, sent } = stream(StreamState.SYNReceived)
    receive(s, 1)
    expect(updates(sent)).toHaveLength(1)
    expect(updates(sent)[0]!.flag & FLAG_ACK).toBe(FLAG_ACK)
    receive(s, 1)
    expect(updates(sent)).toHaveLength(1)
  })

  it('grants nothing while paused, and what is due on resume', () => {
    const { s, sent } = stream(StreamState.Established)
    s.sendPause()
    for (let i = 0; i < 12; i++) receive(s, 16 * KiB)
    expect(updates(sent)).toHaveLength(0)
    s.sendResume()
    expect(updates(sent).map((h) => h.length)).toEqual([192 * KiB])
  })
})

describe('on real connections (guardedMuxerFactory)', () => {
  const ECHO = '/haul-test/window-echo/1.0.0'
  const nodes: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
  })

  /** A node whose streams land in `streams` (inbound ones as the echo handler gets them). */
  async function node(muxer: () => StreamMuxerFactory, streams: Stream[]): Promise<Libp2p> {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [muxer],
    })
    nodes.push(n)
    await n.handle(ECHO, (stream: Stream) => {
      streams.push(stream)
      echoStream(stream)
    })
    return n
  }

  const guarded = () => guardedMuxerFactory(yamux()(), 16 * 1024 * 1024)
  const coalesced = (s: Stream) =>
    (s as unknown as YamuxStream).sendWindowUpdate !== YamuxStream.prototype.sendWindowUpdate

  it.each([
    ['another haul node', guarded, true],
    ['a stock js-yamux node', () => yamux()(), false],
  ])(
    'with %s: installed on our streams both ways, and 3 MiB echo back whole',
    async (_, peerMuxer, peerCoalesces) => {
      const ours: Stream[] = []
      const theirs: Stream[] = []
      const a = await node(guarded, ours)
      const b = await node(peerMuxer, theirs)
      for (const [from, to, inbound] of [
        [a, b, theirs],
        [b, a, ours],
      ] as const) {
        const raw = await from.dialProtocol(to.getMultiaddrs()[0]!, ECHO)
        const s = wrapStream(raw)
        const back = readAll(s)
        // Small writes: many data frames, each of which stock yamux would answer with an update.
        const bytes = random(3 * 1024 * 1024 + 1)
        for (let off = 0; off < bytes.length; off += 16 * 1024)
          await s.write([bytes.subarray(off, off + 16 * 1024)])
        await s.closeWrite()
        const got = await back
        expect(sha256(got)).toBe(sha256(bytes))
        const outbound = from === a
        expect(coalesced(raw)).toBe(outbound || peerCoalesces)
        expect(coalesced(inbound.at(-1)!)).toBe(!outbound || peerCoalesces)
      }
    },
  )
})
