import { afterEach } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import type { EngineOptions } from '../../src/index.ts'

export const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

/**
 * Every engine of a DHT test dials from 127.0.0.1, a DHT's peers all at once: the per-address
 * bounds on inbound connections are for other hosts, and a loaded two-core machine needs more
 * than the default 3 s for a burst of handshakes.
 */
export const ONE_HOST = {
  admission: {
    maxNewPerAddressPerSecond: 1_000,
    maxPendingPerAddress: 128,
    maxConnectionsPerAddress: 1_024,
    upgradeTimeoutMs: 20_000,
  },
}

/**
 * What a test file's engines and folders need to be stopped and removed after each test: push a
 * stop to `stops`; `engine` creates a loopback engine on one host and pushes its own.
 */
export function dhtEngines(): {
  stops: Array<() => Promise<unknown>>
  engine: (opts?: EngineOptions) => Promise<Engine>
} {
  const stops: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    await Promise.allSettled(stops.splice(0).map((s) => s()))
  })
  const engine = async (opts: EngineOptions = {}): Promise<Engine> => {
    const e = await Engine.create({ workers: 1, listen: LOOPBACK, network: ONE_HOST, ...opts })
    stops.push(() => e.stop())
    return e
  }
  return { stops, engine }
}
