import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, TicketInvalidError } from '../../src/errors.ts'
import {
  DecodedTickets,
  decodeSwarmTicket,
  encodeSwarmTicket,
  joinTickets,
} from '../../src/ticket/multi-ticket.ts'
import { decodeTicket, encodeTicket } from '../../src/ticket/ticket.ts'
import { base32Decode, base32Encode } from '../../src/util/base32.ts'
import { legacyV2, seal, ticketText, v3Body } from '../support/tickets.ts'

const cid = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
const a = { peerId: '12D3KooWQk1FPi2fZ6gFQawoMw7Y8sLAvM2k2itpps2qcvq4x9k2', addrs: ['/ip4/127.0.0.1/tcp/1'] }
const b = {
  peerId: '12D3KooWJ2jqUsMF8W5gpUcVKca5TT8AHLw3uiNJqeTMWtiyrt6f',
  addrs: ['/ip4/127.0.0.1/tcp/2', '/ip6/::1/tcp/2'],
}

describe('multi-provider tickets', () => {
  it('tickets are written as version 3 with a checksum; version 1 and 2 tickets still decode', () => {
    for (const providers of [[a], [a, b]]) {
      const t = encodeSwarmTicket({ cid, providers })
      expect(base32Decode(t.slice(5))[0]).toBe(3)
      expect(decodeSwarmTicket(t)).toEqual({ cid, providers })
      // The version 1 decoder refuses it with a typed error rather than misreading it.
      expect(() => decodeTicket(t)).toThrow(TicketInvalidError)
      expect(() => decodeTicket(t)).toThrow(
        /version 3, the one engines write.*read it with decodeSwarmTicket/,
      )
    }
    expect(decodeSwarmTicket(encodeTicket({ cid, ...a }))).toEqual({ cid, providers: [a] })
    expect(decodeSwarmTicket(ticketText(legacyV2(cid, [a, b])))).toEqual({ cid, providers: [a, b] })
  })

  it('a typo or a cut-off paste is a checksum mismatch, not another content id or address', () => {
    const t = encodeSwarmTicket({ cid, providers: [a, b], name: 'big.iso' })
    for (let at = 8; at < t.length; at += 7) {
      const typo = `${t.slice(0, at)}${t[at] === 'a' ? 'b' : 'a'}${t.slice(at + 1)}`
      expect(() => decodeSwarmTicket(typo)).toThrow(/checksum does not match/)
    }
    expect(() => decodeSwarmTicket(t.slice(0, -8))).toThrow(/checksum does not match|truncated|damaged/)
    // A character deleted or doubled: the checksum, or the length said in words.
    for (let at = 8; at < t.length; at += 7) {
      for (const edit of [`${t.slice(0, at)}${t.slice(at + 1)}`, `${t.slice(0, at)}${t[at]}${t.slice(at)}`]) {
        expect(() => decodeSwarmTicket(edit)).toThrow(
          /checksum does not match|truncated|damaged \(a character is missing or extra/,
        )
      }
    }
  })

  it('a ticket wrapped over lines, or written in capitals, reads as it was printed', () => {
    const t = encodeSwarmTicket({ cid, providers: [a, b], name: 'big.iso' })
    const want = decodeSwarmTicket(t)
    const wrapped = `${t.slice(0, 60)}\n${t.slice(60, 130)}\r\n  ${t.slice(130)}\n`
    expect(decodeSwarmTicket(wrapped)).toEqual(want)
    expect(decodeSwarmTicket(t.toUpperCase())).toEqual(want)
    const one = encodeTicket({ cid, ...a })
    expect(decodeTicket(`${one.slice(0, 40)}\n${one.slice(40)}`)).toEqual(decodeTicket(one))
  })

  it('joinTickets merges providers, each peer once', () => {
    const t1 = encodeTicket({ cid, ...a })
    const t2 = encodeTicket({ cid, ...b })
    const t3 = encodeTicket({ cid, peerId: a.peerId, addrs: ['/ip4/10.0.0.1/tcp/9'] })
    const joined = decodeSwarmTicket(joinTickets([t1, t2, t3]))
    expect(joined.providers).toEqual([{ peerId: a.peerId, addrs: [...a.addrs, '/ip4/10.0.0.1/tcp/9'] }, b])
  })

  it('joinTickets refuses tickets for different content', () => {
    const other = new Uint8Array(32).fill(1)
    const both = [encodeTicket({ cid, ...a }), encodeTicket({ cid: other, ...b })]
    expect(() => joinTickets(both)).toThrow(TicketInvalidError)
    // What to do instead, not only what is wrong.
    expect(() => joinTickets(both)).toThrow(
      /^the tickets name 2 different contents: .*fetch each content on its own \(one haul get, or fetch\(\), for each\)$/,
    )
  })

  it.each([
    ['truncated', (x: Uint8Array) => x.subarray(0, x.length - 3)],
    ['trailing byte', (x: Uint8Array) => Uint8Array.from([...x, 0])],
    ['zero providers', (x: Uint8Array) => Uint8Array.from([2, ...x.subarray(1, 33), 0])],
    ['17 providers', (x: Uint8Array) => Uint8Array.from([2, ...x.subarray(1, 33), 17, ...x.subarray(34)])],
    ['version 3', (x: Uint8Array) => Uint8Array.from([3, ...x.subarray(1)])],
  ])('damaged version 2 ticket: %s', (_, damage) => {
    const raw = legacyV2(cid, [a, b])
    expect(() => decodeSwarmTicket(`haul1${base32Encode(damage(raw))}`)).toThrow(TicketInvalidError)
  })

  it('refuses too many providers when encoding', () => {
    const many = Array.from({ length: 17 }, (_, i) => ({ peerId: `p${i}`, addrs: ['/ip4/1.1.1.1/tcp/1'] }))
    expect(() => encodeSwarmTicket({ cid, providers: many })).toThrow(TicketInvalidError)
  })

  describe('secrets (capabilities)', () => {
    const sa = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i)
    const sb = Uint8Array.from({ length: 16 }, (_, i) => 0xb0 + i)

    it('round-trip per provider, beside one without; flag bit 1 is set only when one is there', () => {
      const t = encodeSwarmTicket({ cid, providers: [{ ...a, secret: sa }, b], name: 'big.iso' })
      expect(decodeSwarmTicket(t)).toEqual({ cid, providers: [{ ...a, secret: sa }, b], name: 'big.iso' })
      const body = v3Body(t)
      expect(body[1]! & 2).toBe(2)
      const open = encodeSwarmTicket({ cid, providers: [a, b], name: 'big.iso' })
      expect(v3Body(open)[1]! & 2).toBe(0)
      // 16 bytes for the secret, one length byte per provider: the ticket stays short.
      expect(body.length - v3Body(open).length).toBe(16 + 2)
    })

    it('a damaged secret length is refused, a changed secret byte fails the checksum', () => {
      const t = encodeSwarmTicket({ cid, providers: [{ ...a, secret: sa }] })
      const body = v3Body(t)
      const at = body.length - 17
      expect(body[at]).toBe(16)
      const short = Uint8Array.from(body)
      short[at] = 15
      expect(() => decodeSwarmTicket(seal(short))).toThrow(TicketInvalidError)
      const flipped = base32Decode(t.slice(5))
      flipped[at + 3]! ^= 1
      expect(() => decodeSwarmTicket(ticketText(flipped))).toThrow(/checksum does not match/)
      expect(() => encodeSwarmTicket({ cid, providers: [{ ...a, secret: sa.subarray(1) }] })).toThrow(
        TicketInvalidError,
      )
    })

    it('joinTickets keeps each provider its own secret, and a public provider public', () => {
      const t1 = encodeSwarmTicket({ cid, providers: [{ ...a, secret: sa }] })
      const t2 = encodeSwarmTicket({ cid, providers: [{ ...b, secret: sb }] })
      const t3 = encodeSwarmTicket({ cid, providers: [{ peerId: a.peerId, addrs: ['/ip4/10.0.0.1/tcp/9'] }] })
      const c = {
        peerId: '12D3KooWEoC67yC8k7vkxYj2GAPJnzva9ERgVRvXR7V4DrbxbL7K',
        addrs: ['/ip4/127.0.0.1/tcp/3'],
      }
      const joined = decodeSwarmTicket(joinTickets([t3, t1, t2, encodeTicket({ cid, ...c })]))
      expect(joined.providers).toEqual([
        { peerId: a.peerId, addrs: ['/ip4/10.0.0.1/tcp/9', ...a.addrs], secret: sa },
        { ...b, secret: sb },
        c,
      ])
    })
  })

  describe('DecodedTickets', () => {
    const ticketOf = (n: number) => encodeSwarmTicket({ cid: new Uint8Array(32).fill(n), providers: [a, b] })

    it('decodes a text once and shares the frozen result', () => {
      const cache = new DecodedTickets(4)
      const t = ticketOf(1)
      const first = cache.decode(t)
      expect(first).toEqual(decodeSwarmTicket(t))
      expect(cache.decode(t)).toBe(first)
      expect(Object.isFrozen(first) && Object.isFrozen(first.providers)).toBe(true)
      expect(first.providers.every((p) => Object.isFrozen(p) && Object.isFrozen(p.addrs))).toBe(true)
      expect(() => (first.providers[0]!.addrs as string[]).push('/ip4/10.0.0.9/tcp/1')).toThrow(TypeError)
    })

    it('keeps at most max texts, evicting the least recently used', () => {
      const cache = new DecodedTickets(2)
      const [t1, t2, t3] = [ticketOf(1), ticketOf(2), ticketOf(3)]
      const d1 = cache.decode(t1)
      const d2 = cache.decode(t2)
      expect(cache.decode(t1)).toBe(d1) // t1 is now the most recent: t2 goes next
      cache.decode(t3)
      expect(cache.size).toBe(2)
      expect(cache.decode(t1)).toBe(d1)
      expect(cache.decode(t2)).not.toBe(d2)
      expect(cache.size).toBe(2)
    })

    it('a ticket whose checksum holds but whose peer id or address is no such thing is TICKET_INVALID', () => {
      const cache = new DecodedTickets(4)
      for (const provider of [
        { peerId: 'notapeer', addrs: a.addrs },
        { peerId: a.peerId, addrs: ['garbage'] },
      ]) {
        const t = encodeSwarmTicket({ cid, providers: [provider] })
        expect(() => cache.decode(t)).toThrow(TicketInvalidError)
        expect(() => cache.decode(t)).toThrow(/ticket names no usable peer/)
      }
      expect(cache.size).toBe(0)
    })

    it('a provider with more addresses than a ticket holds is refused saying so, not as one with none', () => {
      const addrs = Array.from({ length: 16 }, (_, i) => `/ip4/127.0.0.1/tcp/${i + 1}`)
      const body = v3Body(encodeSwarmTicket({ cid, providers: [{ peerId: a.peerId, addrs }] }))
      // The address count follows the peer id; a 17th address goes at the end.
      const peer = new TextEncoder().encode(a.peerId)
      const at = Buffer.from(body).indexOf(peer) + peer.length
      expect(body[at]).toBe(16)
      const extra = new TextEncoder().encode('/ip4/127.0.0.1/tcp/17')
      const grown = new Uint8Array([...body, 0, extra.length, ...extra])
      grown[at] = 17
      expect(() => decodeSwarmTicket(seal(grown))).toThrow(
        /ticket names a provider with 17 addresses, more than the 16 a provider may have/,
      )
    })

    it('does not keep what fails to decode, and max 0 keeps nothing', () => {
      const cache = new DecodedTickets(4)
      expect(() => cache.decode('haul1notaticket')).toThrow(TicketInvalidError)
      expect(() => cache.decode('haul1notaticket')).toThrow(TicketInvalidError)
      expect(cache.size).toBe(0)
      const none = new DecodedTickets(0)
      const t = ticketOf(1)
      expect(none.decode(t)).not.toBe(none.decode(t))
      expect(none.size).toBe(0)
      expect(() => new DecodedTickets(-1)).toThrow(InvalidArgumentError)
    })
  })
})
