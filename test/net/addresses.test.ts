import { describe, expect, it } from 'vitest'
import { listenable, MAX_TICKET_ADDRS, reachOf, ticketAddresses } from '../../src/net/addresses.ts'

const PEER = '12D3KooWGzUaF9Q4tkSDeBMqmRvCk6Xi4n7ocjC6BuU1dHZxhwVx'
const RELAY = '12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA'

describe('ticket addresses', () => {
  it('classifies addresses by how far they reach', () => {
    expect(reachOf('/ip4/203.0.113.9/tcp/1')).toBe('private') // documentation range
    expect(reachOf('/ip4/8.8.4.4/tcp/1')).toBe('public')
    expect(reachOf('/ip6/2a01:4f8::1/tcp/1')).toBe('public')
    expect(reachOf('/ip4/192.168.1.5/tcp/1')).toBe('private')
    expect(reachOf('/ip4/100.64.0.7/tcp/1')).toBe('private')
    expect(reachOf('/ip6/fd00::2/tcp/1')).toBe('private')
    expect(reachOf('/ip4/127.0.0.1/tcp/1')).toBe('loopback')
    expect(reachOf('/ip6/::1/tcp/1')).toBe('loopback')
    expect(reachOf('/ip4/169.254.3.3/tcp/1')).toBe('unusable')
    expect(reachOf('/ip6/fe80::1/tcp/1')).toBe('unusable')
    expect(reachOf('/ip4/0.0.0.0/tcp/1')).toBe('unusable')
    expect(reachOf('/dns4/example.org/tcp/1')).toBe('public')
    expect(reachOf(`/ip4/10.0.0.1/tcp/1/p2p/${RELAY}/p2p-circuit`)).toBe('relayed')
    expect(reachOf('not an address')).toBe('unusable')
  })

  it('orders public, private, relayed; drops loopback when anything else exists, duplicates and link-local', () => {
    const node = [
      `/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`,
      `/ip6/::1/tcp/4002/p2p/${PEER}`,
      `/ip6/fd00::2/tcp/4002/p2p/${PEER}`,
      `/ip4/192.168.1.5/tcp/4001/p2p/${PEER}`,
      `/ip4/10.9.0.1/tcp/4001/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`,
      `/ip6/fe80::1/tcp/4002/p2p/${PEER}`,
      `/ip6/2a01:4f8::1/tcp/4002/p2p/${PEER}`,
      `/ip4/8.8.4.4/tcp/4001/p2p/${PEER}`,
      `/ip4/192.168.1.5/tcp/4001`,
    ]
    expect(ticketAddresses(node, PEER)).toEqual([
      '/ip4/8.8.4.4/tcp/4001',
      '/ip6/2a01:4f8::1/tcp/4002',
      '/ip4/192.168.1.5/tcp/4001',
      '/ip6/fd00::2/tcp/4002',
      `/ip4/10.9.0.1/tcp/4001/p2p/${RELAY}/p2p-circuit`,
    ])
  })

  it("drops a relay's loopback address when the relay gave another; keeps it when it is all there is", () => {
    const through = (host: string): string => `/ip4/${host}/tcp/4003/p2p/${RELAY}/p2p-circuit`
    const node = [
      `/ip4/192.168.1.5/tcp/4001/p2p/${PEER}`,
      `${through('127.0.0.1')}/p2p/${PEER}`,
      through('10.9.0.11'),
    ]
    expect(ticketAddresses(node, PEER)).toEqual(['/ip4/192.168.1.5/tcp/4001', through('10.9.0.11')])
    expect(ticketAddresses([`/ip4/127.0.0.1/tcp/1/p2p/${PEER}`, through('127.0.0.1')], PEER)).toEqual([
      '/ip4/127.0.0.1/tcp/1',
      through('127.0.0.1'),
    ])
  })

  it('keeps loopback when it is all there is, and caps the count', () => {
    expect(ticketAddresses([`/ip4/127.0.0.1/tcp/1/p2p/${PEER}`, `/ip6/::1/tcp/2/p2p/${PEER}`], PEER)).toEqual(
      ['/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/2'],
    )
    const many = Array.from({ length: 20 }, (_, i) => `/ip4/192.168.0.${i + 1}/tcp/9`)
    expect(ticketAddresses(many, PEER)).toHaveLength(MAX_TICKET_ADDRS)
  })

  it('the cap keeps an address of each family and a relayed one, in their order', () => {
    const v4 = Array.from({ length: 12 }, (_, i) => `/ip4/10.231.52.${i + 101}/tcp/9`)
    const v6 = '/ip6/fd00:231:58::1/tcp/9'
    const relayed = `/ip4/10.9.0.11/tcp/4003/p2p/${RELAY}/p2p-circuit`
    const picked = ticketAddresses(
      [...v4, v6, relayed].map((a) => `${a}/p2p/${PEER}`),
      PEER,
    )
    expect(picked).toEqual([...v4.slice(0, MAX_TICKET_ADDRS - 2), v6, relayed])
    // One family alone, no relay: the first ones, as before.
    expect(ticketAddresses(v4, PEER)).toEqual(v4.slice(0, MAX_TICKET_ADDRS))
  })

  it('leaves listen addresses without an IPv6 wildcard alone', async () => {
    expect(await listenable(['/ip4/127.0.0.1/tcp/0'])).toEqual(['/ip4/127.0.0.1/tcp/0'])
    expect(await listenable(['/ip6/::/tcp/0'])).toEqual(['/ip6/::/tcp/0'])
  })
})
