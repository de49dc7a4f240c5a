/**
 * One attacker of bench/attack.ts, in its own process:
 * `attack-peer.ts <ticket> <host> <port> <source-address>`.
 * Until told to exit (IPC), against the peer the ticket names, it keeps up:
 *   - silent sockets: TCP connections to the peer's port that never say anything (no Noise
 *     handshake), each replaced as soon as it is closed, from `source-address` (an attacker
 *     on another host: on loopback, 127.0.0.2 and up);
 *   - half frames: streams on which it sends hello and then the first bytes of a request frame
 *     announced at the serving side's whole frame limit, and nothing more;
 *   - readers that never read: streams asking for every chunk of the content and never reading
 *     the replies, sending a `cancel` for a request id that does not exist every second.
 * Counts, through HAUL_ATTACK_SOCKETS / HAUL_ATTACK_HALF_FRAMES / HAUL_ATTACK_NO_READ, per attacker.
 * It speaks the wire format with haul's own encoder, and holds the ticket: its requests carry the
 * ticket's secret, so the sender serves it as it would a receiver.
 */
import { connect, type Socket } from 'node:net'
import { decodeHeader } from '../dist/descriptor/header.js'
import { Network } from '../dist/net/network.js'
import type { FrameStream } from '../dist/net/stream-io.js'
import { FrameDecoder } from '../dist/protocol/decoder.js'
import { encodeMessage } from '../dist/protocol/encoder.js'
import { DEFAULT_MAX_FRAME } from '../dist/protocol/frame.js'
import { MESSAGE_TYPES, PROTOCOL_ID, PROTOCOL_VERSION } from '../dist/protocol/messages.js'
import { decodeSwarmTicket } from '../dist/ticket/multi-ticket.js'

const [ticketText, host, port, source] = process.argv.slice(2) as [string, string, string, string]
// The bench went away (killed, or it gave up): so does its attacker.
process.once('disconnect', () => process.exit(0))
const count = (k: string, d: number) => Number(process.env[k] ?? d)
const swarm = decodeSwarmTicket(ticketText)
const ticket = { cid: swarm.cid, ...swarm.providers[0]! }
let stopping = false
const stats = { sockets: 0, halfFrames: 0, noRead: 0 }

const hello = () =>
  encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, codecs: ['none'], maxFrame: DEFAULT_MAX_FRAME })

/** A silent socket, replaced when the peer closes it. */
function silentSocket(): void {
  if (stopping) return
  const s: Socket = connect({ host, port: Number(port), localAddress: source })
  stats.sockets++
  s.on('error', () => {})
  s.once('close', () => setTimeout(silentSocket, 50))
}

async function openStream(net: Network): Promise<FrameStream | undefined> {
  try {
    return await net.openStream(ticket.peerId, [...ticket.addrs], PROTOCOL_ID, { idleTimeoutMs: 3_600_000 })
  } catch {
    return undefined
  }
}

/** hello, then 5 bytes of header and a few of body of a get-chunks frame announced at the frame limit. */
async function halfFrame(net: Network): Promise<void> {
  while (!stopping) {
    const s = await openStream(net)
    if (s === undefined) {
      await sleep(200)
      continue
    }
    stats.halfFrames++
    const head = new Uint8Array(16)
    new DataView(head.buffer).setUint32(0, DEFAULT_MAX_FRAME - 8)
    head[4] = MESSAGE_TYPES['get-chunks']
    await s.write([...hello(), head]).catch(() => {})
    // Read and drop whatever comes back; return when the peer closes the stream.
    try {
      for await (const _ of s.incoming) {
        /* drop */
      }
    } catch {}
  }
}

/** Asks for every chunk and never reads the replies; a cancel for a made-up id every second. */
async function neverReads(net: Network): Promise<void> {
  while (!stopping) {
    const s = await openStream(net)
    if (s === undefined) {
      await sleep(200)
      continue
    }
    stats.noRead++
    try {
      const { cid, secret } = ticket
      await s.write([...hello(), ...encodeMessage({ type: 'get-header', requestId: 1, cid, secret })])
      const decoder = new FrameDecoder()
      const it = s.incoming[Symbol.asyncIterator]()
      let leafCount: number | undefined
      while (leafCount === undefined) {
        const next = await it.next()
        if (next.done) break
        decoder.push(next.value)
        for (const m of decoder.frames())
          if (m.type === 'header') leafCount = decodeHeader(m.header).leafCount
      }
      if (leafCount === undefined) continue
      await s.write(
        encodeMessage({
          type: 'get-chunks',
          requestId: 2,
          cid,
          ranges: [{ start: 0, end: Math.min(leafCount, 4096) }],
          secret,
        }),
      )
      // From here on nothing is read: the stream's buffer fills and its window closes.
      for (let id = 1_000_000; !stopping && !s.closed; id++) {
        await s.write(encodeMessage({ type: 'cancel', requestId: id })).catch(() => {})
        await sleep(1000)
      }
    } catch {}
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

const net = await Network.create({})
for (let i = 0; i < count('HAUL_ATTACK_SOCKETS', 16); i++) silentSocket()
const loops = [
  ...Array.from({ length: count('HAUL_ATTACK_HALF_FRAMES', 32) }, () => halfFrame(net)),
  ...Array.from({ length: count('HAUL_ATTACK_NO_READ', 4) }, () => neverReads(net)),
]
process.send?.({ type: 'ready' })
await new Promise<void>((resolve) =>
  process.on('message', (m: { type: string }) => m.type === 'exit' && resolve()),
)
stopping = true
process.send?.({ type: 'stats', ...stats })
await Promise.race([Promise.allSettled(loops), sleep(2000)])
await net.stop()
process.exit(0)
