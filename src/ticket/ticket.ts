import { TextDecoder } from 'node:util'
import { TicketInvalidError } from '../errors.ts'
import { base32Decode, base32Encode } from '../util/base32.ts'

/**
 * A ticket is everything a receiver needs to fetch one content id, as one
 * copy-pasteable string: `haul1` + lowercase RFC 4648 base32 (no padding) of
 *
 *   u8  ticket version (1)
 *   32  content id (SHA-256 of the descriptor header)
 *   u8  peer id length, then the peer id (base58btc text, as libp2p prints it)
 *   u8  address count (1..16), then per address: u16 length + multiaddr text
 *
 * Text forms keep the ticket independent of multiaddr's binary codec version;
 * the receiver still parses each address before dialing it.
 */
export interface Ticket {
  readonly cid: Uint8Array
  readonly peerId: string
  readonly addrs: readonly string[]
}

const PREFIX = 'haul1'
const TICKET_VERSION = 1
const MAX_ADDRS = 16
const MAX_ADDR_LEN = 512
const MAX_TICKET_CHARS = 16 * 1024

export function encodeTicket(t: Ticket): string {
  if (t.cid.length !== 32) throw new TicketInvalidError('ticket content id must be 32 bytes')
  if (t.addrs.length === 0 || t.addrs.length > MAX_ADDRS) {
    throw new TicketInvalidError(`a ticket carries 1..${MAX_ADDRS} addresses, got ${t.addrs.length}`)
  }
  const enc = new TextEncoder()
  const peer = enc.encode(t.peerId)
  if (peer.length === 0 || peer.length > 255) throw new TicketInvalidError('peer id is empty or too long')
  const addrs = t.addrs.map((a) => enc.encode(a))
  for (const a of addrs) if (a.length > MAX_ADDR_LEN) throw new TicketInvalidError('address too long')
  const size = 1 + 32 + 1 + peer.length + 1 + addrs.reduce((n, a) => n + 2 + a.length, 0)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let p = 0
  out[p++] = TICKET_VERSION
  out.set(t.cid, p)
  p += 32
  out[p++] = peer.length
  out.set(peer, p)
  p += peer.length
  out[p++] = addrs.length
  for (const a of addrs) {
    view.setUint16(p, a.length)
    p += 2
    out.set(a, p)
    p += a.length
  }
  return PREFIX + base32Encode(out)
}

/**
 * A ticket as pasted: the line breaks and spaces a mail or chat client wraps a long line with
 * are dropped, and a ticket written in capitals (base32 is one case) is read in lower case.
 */
export function pastedTicket(text: string): string {
  const s = text.replace(/\s+/g, '')
  return s.startsWith(PREFIX.toUpperCase()) ? s.toLowerCase() : s
}

export function decodeTicket(text: string): Ticket {
  const s = pastedTicket(text)
  if (!s.startsWith(PREFIX)) {
    throw new TicketInvalidError(
      `not a haul ticket (it should start with "${PREFIX}"): copy the whole line that "haul send" printed`,
    )
  }
  if (s.length > MAX_TICKET_CHARS) throw new TicketInvalidError('ticket is too long')
  let bytes: Uint8Array
  try {
    bytes = base32Decode(s.slice(PREFIX.length))
  } catch (err) {
    throw new TicketInvalidError(`ticket is damaged (${(err as Error).message}): copy it again`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let p = 0
  const need = (n: number): void => {
    if (p + n > bytes.length)
      throw new TicketInvalidError('ticket is truncated: copy the whole line that "haul send" printed')
  }
  need(1)
  const version = bytes[p++]
  if (version === 2 || version === 3) {
    throw new TicketInvalidError(
      `this ticket is version ${version}, the one engines write (it may name several providers and a name): read it with decodeSwarmTicket`,
    )
  }
  if (version !== TICKET_VERSION)
    throw new TicketInvalidError(`unsupported ticket version ${version}; upgrade haul`)
  need(32)
  const cid = bytes.slice(p, p + 32)
  p += 32
  need(1)
  const peerLen = bytes[p++]!
  need(peerLen)
  const dec = new TextDecoder('utf-8', { fatal: true })
  const peerId = decodeText(dec, bytes.subarray(p, p + peerLen))
  p += peerLen
  need(1)
  const count = bytes[p++]!
  if (count === 0) throw new TicketInvalidError('ticket has no usable addresses')
  if (count > MAX_ADDRS)
    throw new TicketInvalidError(
      `ticket names ${count} addresses, more than the ${MAX_ADDRS} a ticket may hold`,
    )
  const addrs: string[] = []
  for (let i = 0; i < count; i++) {
    need(2)
    const len = view.getUint16(p)
    p += 2
    if (len > MAX_ADDR_LEN) throw new TicketInvalidError('ticket address too long')
    need(len)
    addrs.push(decodeText(dec, bytes.subarray(p, p + len)))
    p += len
  }
  if (p !== bytes.length) throw new TicketInvalidError('ticket has trailing bytes: was it pasted twice?')
  return { cid, peerId, addrs }
}

function decodeText(dec: TextDecoder, b: Uint8Array): string {
  try {
    return dec.decode(b)
  } catch {
    throw new TicketInvalidError('ticket contains invalid text')
  }
}
