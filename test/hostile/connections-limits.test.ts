import { createServer, type Server, type Socket } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveEngineConfig } from '../../src/engine/config.ts'
import { ConfigInvalidError, PeerUnreachableError } from '../../src/errors.ts'
import { addressKey } from '../../src/net/address-key.ts'
import { defaultAdmissionOptions } from '../../src/net/connection-admission.ts'
import { Network } from '../../src/net/network.ts'
import { resolveNodeOptions } from '../../src/net/options.ts'
import { eventually } from '../support/wait.ts'
import { silentSockets, tcpTarget } from './support/connections-attack.ts'

describe('admission options', () => {
  it('are merged with the defaults without touching the caller’s object', () => {
    const admission = { maxConnectionsPerPeer: 3 }
    const o = resolveNodeOptions({ admission })
    expect(o.admission).toEqual({ ...defaultAdmissionOptions, maxConnectionsPerPeer: 3 })
    expect(admission).toEqual({ maxConnectionsPerPeer: 3 })
    expect(
      resolveNodeOptions({ admission: { upgradeTimeoutMs: undefined } }).admission.upgradeTimeoutMs,
    ).toBe(defaultAdmissionOptions.upgradeTimeoutMs)
  })

  it.each([
    [{ upgradeTimeoutMs: 0 }],
    [{ maxPending: 1.5 }],
    [{ maxPendingPerAddress: -1 }],
    [{ maxNewPerAddressPerSecond: Number.NaN }],
    [{ newConnectionGraceMs: '1000' as unknown as number }],
    [{ maxConnectionsPerPeer: 1 }],
    [{ maxConnectionsPerAddress: 8, maxPendingPerAddress: 9 }],
  ])('refuses %j', (admission) => {
    expect(() => resolveNodeOptions({ admission })).toThrow(ConfigInvalidError)
  })

  it('an engine resolves them and passes them to its network', async () => {
    const config = resolveEngineConfig({ network: { maxConnections: 32, admission: { maxPending: 7 } } })
    expect(config.network).toMatchObject({
      maxConnections: 32,
      admission: { ...defaultAdmissionOptions, maxPending: 7 },
    })
    await expect(
      Network.create({ ...config.network, admission: { maxConnectionsPerPeer: 0 } }),
    ).rejects.toBeInstanceOf(ConfigInvalidError)
  })
})

describe('addressKey', () => {
  it.each([
    ['/ip4/10.1.2.3/tcp/1', '10.1.2.3'],
    ['/ip6/2001:db8:aa:bb:1:2:3:4/tcp/1', '2001:db8:aa:bb::/64'],
    ['/ip6/2001:db8:aa:bb::9/tcp/1', '2001:db8:aa:bb::/64'],
    ['/ip6/2001:DB8:00aa::/tcp/1', '2001:db8:aa:0::/64'],
    ['/ip6/::1/tcp/1', '0:0:0:0::/64'],
    ['/ip6/::ffff:127.0.0.7/tcp/1', '127.0.0.7'],
    ['/ip6/::ffff:7f00:107/tcp/1', '127.0.1.7'],
  ])('%s counts as %s', (ma, key) => {
    expect(addressKey(multiaddr(ma))).toBe(key)
  })

  it('two hosts of one /64 share a key, two /64s do not', () => {
    const k = (ip: string): string | undefined => addressKey(multiaddr(`/ip6/${ip}/tcp/1`))
    expect(k('2001:db8::1')).toBe(k('2001:db8::ffff:1'))
    expect(k('2001:db8:0:1::1')).not.toBe(k('2001:db8:0:2::1'))
  })
})

describe('the inbound upgrade timeout is separate from the dial timeout', () => {
  const networks: Network[] = []
  let server: Server | undefined
  const held = new Set<Socket>()
  afterEach(async () => {
    await Promise.all(networks.splice(0).map((n) => n.stop()))
    for (const s of held) s.destroy()
    held.clear()
    await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())))
    server = undefined
  })

  it('a silent or dripping inbound socket is closed after upgradeTimeoutMs; our dial to a silent peer waits connectTimeoutMs', async () => {
    const net = await Network.create({ connectTimeoutMs: 2_000, admission: { upgradeTimeoutMs: 300 } })
    networks.push(net)
    const attack = silentSockets({
      target: tcpTarget(net.addresses),
      localAddresses: ['127.0.0.2'],
      perAddress: 1,
      renewAfterMs: 60_000,
    })
    try {
      await eventually(() => attack.lifetimes.length === 1, 'the silent socket closed', 5_000)
      expect(attack.lifetimes[0]!).toBeGreaterThanOrEqual(250)
      expect(attack.lifetimes[0]!).toBeLessThan(2_000)
    } finally {
      attack.stop()
    }

    // A socket that drips a multistream-select header, one byte at a time, is cut just the same:
    // the timeout covers the whole handshake, not the wait for each byte.
    const drip = silentSockets({
      target: tcpTarget(net.addresses),
      localAddresses: ['127.0.0.3'],
      perAddress: 1,
      renewAfterMs: 60_000,
      drip: new TextEncoder().encode('\x13/multistream/1.0.0\n\x07/noise\n'),
      dripEveryMs: 50,
    })
    try {
      await eventually(() => drip.lifetimes.length === 1, 'the dripping socket closed', 5_000)
      expect(drip.lifetimes[0]!).toBeGreaterThanOrEqual(250)
      expect(drip.lifetimes[0]!).toBeLessThan(2_000)
    } finally {
      drip.stop()
    }

    // A "peer" that accepts TCP and never answers: only the dial timeout ends our attempt.
    server = createServer((s) => {
      held.add(s)
      s.on('error', () => {})
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    const silentPeer = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
    const t0 = Date.now()
    const err = await net.openStream(silentPeer, [`/ip4/127.0.0.1/tcp/${port}`], '/x/1').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(PeerUnreachableError)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900)
  }, 30_000)
})
