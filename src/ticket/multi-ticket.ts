import { createHash } from 'node:crypto'
import { TextDecoder } from 'node:util'
import { InvalidArgumentError, TicketInvalidError } from '../errors.ts'
import { parseAddrs, parsePeer } from '../net/peer-addr.ts'
import { SECRET_BYTES } from '../protocol/messages.ts'
import { base32Decode, base32Encode } from '../util/base32.ts'
import { decodeTicket, pastedTicket } from './ticket.ts'

/**
 * Tickets: `haul1` + lowercase base32 (no padding). Every ticket is written as version 3:
 *
 *   u8  ticket version (3)
 *   u8  flags: bit 0, the content id names a collection's manifest (src/collection/manifest.ts);
 *       bit 1, providers carry secrets (below)
 *   u8  name length (0..255) + the published name (UTF-8)
 *   32  content id
 *   u8  provider count (1..MAX_TICKET_PROVIDERS), then per provider:
 *       u8 peer id length + peer id (base58btc text)
 *       u8 address count (1..16), then per address: u16 length + multiaddr text
 *       with flag bit 1: u8 secret length (0 or 16) + the secret
 *   4   checksum: the first 4 bytes of the SHA-256 of everything before it
 *
 * A secret is the capability the provider's publish made (16 random bytes, src/serve/access.ts):
 * requests to that provider present it, and content published with one is served to no one
 * else. A provider without one (older tickets, `--public`) serves the content to anyone who
 * names its content id. Secrets are per provider because joinTickets merges tickets of
 * different senders, each with its own. A haul that predates bit 1 refuses such a ticket
 * ("upgrade haul") rather than fetch without the secrets.
 *
 * The checksum turns a typo or a cut-off paste into `TICKET_INVALID: checksum does not match`
 * rather than a wrong content id or address. Older versions still decode: version 1 (one
 * provider, src/ticket/ticket.ts) and version 2, which is version 3 without flags, name and
 * checksum:
 *
 *   u8  ticket version (2)
 *   32  content id
 *   u8  provider count (1..MAX_TICKET_PROVIDERS), then per provider:
 *       u8 peer id length + peer id (base58btc text)
 *       u8 address count (1..16), then per address: u16 length + multiaddr text
 *
 *
 * The decoder reads every version; every length is checked before it is used. A name from a
 * ticket is the sender's word: it is checked as a path component before it is used (see
 * src/collection/names.ts).
 */

/** One peer that serves (all or part of) a content id. */
export interface Provider {
  readonly peerId: string
  readonly addrs: readonly string[]
  /** The capability its publish made ({@link SECRET_BYTES}), presented with every request to it; absent: public. */
  readonly secret?: Uint8Array
}

export interface SwarmTicket {
  readonly cid: Uint8Array
  readonly providers: readonly Provider[]
  /** The published file's or folder's name (version 3), as the sender gave it. */
  readonly name?: string
  /** `collection`: `cid` names a manifest of files (version 3). @default 'file' */
  readonly kind?: 'file' | 'collection'
}

const PREFIX = 'haul1'
const VERSION = 2
const VERSION_NAMED = 3
const FLAG_COLLECTION = 1
const FLAG_SECRETS = 2
const KNOWN_FLAGS = FLAG_COLLECTION | FLAG_SECRETS
const MAX_NAME_BYTES = 255
export const MAX_TICKET_PROVIDERS = 16
/** Addresses a ticket holds per provider. */
export const MAX_PROVIDER_ADDRS = 16
const MAX_ADDRS = MAX_PROVIDER_ADDRS
const MAX_ADDR_LEN = 512
const MAX_CHARS = 64 * 1024

export function encodeSwarmTicket(t: SwarmTicket): string {
  if (t.cid.length !== 32) throw new TicketInvalidError('ticket content id must be 32 bytes')
  const n = t.providers.length
  if (n === 0 || n > MAX_TICKET_PROVIDERS) {
    throw new TicketInvalidError(`a ticket names 1..${MAX_TICKET_PROVIDERS} providers, got ${n}`)
  }
  const enc = new TextEncoder()
  const name = enc.encode(t.name ?? '')
  if (name.length > MAX_NAME_BYTES)
    throw new TicketInvalidError(`a ticket's name is at most ${MAX_NAME_BYTES} bytes`)
  const secrets = t.providers.some((p) => p.secret !== undefined)
  const flags = (t.kind === 'collection' ? FLAG_COLLECTION : 0) | (secrets ? FLAG_SECRETS : 0)
  const parts: number[] = [VERSION_NAMED, flags, name.length, ...name]
  parts.push(...t.cid, n)
  for (const p of t.providers) {
    const peer = enc.encode(p.peerId)
    if (peer.length === 0 || peer.length > 255) throw new TicketInvalidError('peer id is empty or too long')
    if (p.addrs.length === 0 || p.addrs.length > MAX_ADDRS) {
      throw new TicketInvalidError(`a provider carries 1..${MAX_ADDRS} addresses, got ${p.addrs.length}`)
    }
    parts.push(peer.length, ...peer, p.addrs.length)
    for (const a of p.addrs) {
      const b = enc.encode(a)
      if (b.length > MAX_ADDR_LEN) throw new TicketInvalidError('address too long')
      parts.push(b.length >> 8, b.length & 0xff, ...b)
    }
    if (!secrets) continue
    const secret = p.secret ?? new Uint8Array(0)
    if (secret.length !== 0 && secret.length !== SECRET_BYTES)
      throw new TicketInvalidError(`a provider's secret is ${SECRET_BYTES} bytes`)
    parts.push(secret.length, ...secret)
  }
  const body = Uint8Array.from(parts)
  const sum = checksumOf(body)
  const out = new Uint8Array(body.length + CHECKSUM_BYTES)
  out.set(body)
  out.set(sum, body.length)
  return PREFIX + base32Encode(out)
}

/** Bytes of a version-3 ticket's checksum. */
const CHECKSUM_BYTES = 4

function checksumOf(body: Uint8Array): Uint8Array {
  return createHash('sha256').update(body).digest().subarray(0, CHECKSUM_BYTES)
}

/** Reads a version 1 (one provider), version 2 (several) or version 3 (named) ticket. */
export function decodeSwarmTicket(text: string): SwarmTicket {
  const s = pastedTicket(text)
  if (!s.startsWith(PREFIX) || s.length > MAX_CHARS) {
    // The v1 decoder gives the helpful message for every malformed case.
    const t = decodeTicket(s)
    return { cid: t.cid, providers: [{ peerId: t.peerId, addrs: t.addrs }] }
  }
  let bytes: Uint8Array
  try {
    bytes = base32Decode(s.slice(PREFIX.length))
  } catch (err) {
    throw new TicketInvalidError(`ticket is damaged (${(err as Error).message}): copy it again`)
  }
  if (bytes[0] !== VERSION && bytes[0] !== VERSION_NAMED) {
    const t = decodeTicket(s)
    return { cid: t.cid, providers: [{ peerId: t.peerId, addrs: t.addrs }] }
  }
  if (bytes[0] === VERSION_NAMED) {
    const end = bytes.length - CHECKSUM_BYTES
    if (end < 1 || !Buffer.from(checksumOf(bytes.subarray(0, end))).equals(bytes.subarray(end))) {
      throw new TicketInvalidError(
        'checksum does not match: the ticket was mistyped or cut short; copy the whole line again',
      )
    }
    bytes = bytes.subarray(0, end)
  }
  let p = 1
  const need = (n: number): void => {
    if (p + n > bytes.length) throw new TicketInvalidError('ticket is truncated: copy the whole line')
  }
  const dec = new TextDecoder('utf-8', { fatal: true })
  const text8 = (n: number): string => {
    need(n)
    try {
      return dec.decode(bytes.subarray(p, p + n))
    } catch {
      throw new TicketInvalidError('ticket contains invalid text')
    } finally {
      p += n
    }
  }
  let named: Pick<SwarmTicket, 'name' | 'kind'> = {}
  let flags = 0
  if (bytes[0] === VERSION_NAMED) {
    need(2)
    flags = bytes[p++]!
    if ((flags & ~KNOWN_FLAGS) !== 0)
      throw new TicketInvalidError('ticket has flags this version does not know: upgrade haul')
    const name = text8(bytes[p++]!)
    named = {
      ...(flags & FLAG_COLLECTION ? { kind: 'collection' as const } : {}),
      ...(name === '' ? {} : { name }),
    }
  }
  need(32)
  const cid = bytes.slice(p, p + 32)
  p += 32
  need(1)
  const count = bytes[p++]!
  if (count === 0 || count > MAX_TICKET_PROVIDERS) {
    throw new TicketInvalidError(`ticket names ${count} providers; allowed 1..${MAX_TICKET_PROVIDERS}`)
  }
  const providers: Provider[] = []
  for (let i = 0; i < count; i++) {
    need(1)
    const peerLen = bytes[p++]!
    if (peerLen === 0) throw new TicketInvalidError('ticket has an empty peer id')
    const peerId = text8(peerLen)
    need(1)
    const n = bytes[p++]!
    if (n === 0) throw new TicketInvalidError('ticket names a provider with no usable addresses')
    if (n > MAX_ADDRS)
      throw new TicketInvalidError(
        `ticket names a provider with ${n} addresses, more than the ${MAX_ADDRS} a provider may have`,
      )
    const addrs: string[] = []
    for (let k = 0; k < n; k++) {
      need(2)
      const len = (bytes[p]! << 8) | bytes[p + 1]!
      p += 2
      if (len > MAX_ADDR_LEN) throw new TicketInvalidError('ticket address too long')
      addrs.push(text8(len))
    }
    let secret: Uint8Array | undefined
    if (flags & FLAG_SECRETS) {
      need(1)
      const len = bytes[p++]!
      if (len !== 0 && len !== SECRET_BYTES) throw new TicketInvalidError('ticket has a damaged secret')
      need(len)
      if (len > 0) secret = bytes.slice(p, p + len)
      p += len
    }
    providers.push(secret === undefined ? { peerId, addrs } : { peerId, addrs, secret })
  }
  if (p !== bytes.length) throw new TicketInvalidError('ticket has trailing bytes: was it pasted twice?')
  return { cid, providers, ...named }
}

/**
 * One ticket naming every provider of `tickets` (all for the same content id), each peer once
 * (its addresses merged, first seen first), each with its own secret (the first one seen for
 * that peer: a peer's secrets differ only across its publishes, and the first is as good).
 */
export function joinTickets(tickets: readonly string[]): string {
  if (tickets.length === 0) throw new TicketInvalidError('no tickets to join')
  const decoded = tickets.map(decodeSwarmTicket)
  const { cid, name, kind } = decoded[0]!
  const byPeer = new Map<string, { addrs: Set<string>; secret: Uint8Array | undefined }>()
  const contents = new Set(decoded.map((t) => Buffer.from(t.cid).toString('hex'))).size
  if (contents > 1) {
    throw new TicketInvalidError(
      `the tickets name ${contents} different contents: several tickets are joined only when they name one content (its senders, fetched from at once); fetch each content on its own (one haul get, or fetch(), for each)`,
    )
  }
  for (const t of decoded) {
    if ((t.kind ?? 'file') !== (kind ?? 'file'))
      throw new TicketInvalidError('tickets mix a folder and a file: give tickets of one publish')
    for (const p of t.providers) {
      const peer = byPeer.get(p.peerId) ?? { addrs: new Set<string>(), secret: undefined }
      for (const a of p.addrs) peer.addrs.add(a)
      peer.secret ??= p.secret
      byPeer.set(p.peerId, peer)
    }
  }
  const providers = [...byPeer].map(([peerId, { addrs, secret }]) => ({
    peerId,
    addrs: [...addrs].slice(0, MAX_ADDRS),
    ...(secret === undefined ? {} : { secret }),
  }))
  return encodeSwarmTicket({
    cid,
    providers,
    ...(name === undefined ? {} : { name }),
    ...(kind === undefined ? {} : { kind }),
  })
}

/**
 * How a fetch of `ticket` asks a provider named beside it (FetchOptions.providers, addProvider):
 * one without a secret of its own presents the ticket's first, so a peer fetching the same
 * ticket serves it what it has so far (partial seeding: src/fetch/fetch-job.ts).
 */
export function presentingTicket(ticket: SwarmTicket): (p: Provider) => Provider {
  const secret = ticket.providers.find((p) => p.secret !== undefined)?.secret
  return (p) => (p.secret !== undefined || secret === undefined ? p : { ...p, secret })
}

/**
 * Decoded tickets by their text, the `max` most recently used. A receiver often fetches one
 * ticket many times (a load test's 10,000 transfers of 64 files, a retry loop), and each queued
 * fetch held its own decoded copy: ~740 of the ~4,600 bytes a queued fetch costs (measured with
 * 10,000 queued fetches of 16 tickets). The decoded tickets are frozen, since fetches share them;
 * a text that does not decode is not kept (its error is thrown again on each call).
 */
export class DecodedTickets {
  readonly #max: number
  readonly #byText = new Map<string, SwarmTicket>()

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 0)
      throw new InvalidArgumentError('max must be a non-negative integer')
    this.#max = max
  }

  get size(): number {
    return this.#byText.size
  }

  decode(text: string): SwarmTicket {
    const hit = this.#byText.get(text)
    if (hit !== undefined) {
      // Most recent last: Map keeps insertion order, so the first key is the one to evict.
      this.#byText.delete(text)
      this.#byText.set(text, hit)
      return hit
    }
    const t = freeze(decodeSwarmTicket(text))
    for (const p of t.providers) checkProvider(p)
    if (this.#max === 0) return t
    if (this.#byText.size >= this.#max) this.#byText.delete(this.#byText.keys().next().value!)
    this.#byText.set(text, t)
    return t
  }
}

/**
 * A ticket whose checksum holds can still name no peer (made by hand, or by a broken encoder):
 * refused as the ticket's fault here, before a fetch dials anything.
 */
function checkProvider(p: Provider): void {
  try {
    parseAddrs(parsePeer(p.peerId), p.addrs)
  } catch (err) {
    throw new TicketInvalidError(
      `ticket names no usable peer (${(err as Error).message}): ask the sender for a new one`,
      {
        cause: err,
      },
    )
  }
}

/** A provider's secret stays a plain Uint8Array: a typed array with elements cannot be frozen. */
function freeze(t: SwarmTicket): SwarmTicket {
  for (const p of t.providers) {
    Object.freeze(p.addrs)
    Object.freeze(p)
  }
  Object.freeze(t.providers)
  return Object.freeze(t)
}
