import { availableParallelism, totalmem } from 'node:os'
import { describe, expect, it } from 'vitest'
import { DEFAULT_FIXED } from '../../src/chunking/params.ts'
import { listOptions } from '../../src/engine/config/docs.ts'
import { resolveOption } from '../../src/engine/config/resolve.ts'
import { crossRules } from '../../src/engine/config/rules.ts'
import type { OptionSpec } from '../../src/engine/config/schema.ts'
import { type EngineOptions, engineDefaults, resolveEngineConfig } from '../../src/engine/config.ts'
import { ConfigInvalidError } from '../../src/errors.ts'
import { createEngine } from '../../src/index.ts'
import { defaultAdmissionOptions } from '../../src/net/connection-admission.ts'
import { defaultNodeOptions, resolveNetworkOptions, resolveNodeOptions } from '../../src/net/options.ts'
import { defaultWrapStreamOptions } from '../../src/net/stream-io.ts'
import { defaultBufferRecyclerOptions } from '../../src/resources/buffer-recycler.ts'
import { defaultPriorityWeights } from '../../src/resources/fair-queue.ts'
import { defaultMemoryBudgetOptions } from '../../src/resources/memory-budget.ts'
import { defaultJournalOptions } from '../../src/storage/journal.ts'
import { KiB, MiB } from '../../src/types.ts'
import { defaultWorkerPoolOptions } from '../../src/workers/pool-options.ts'

const options = listOptions()
/** Every group path: '' (the top level), 'fetch', ..., 'network.admission'. */
const groups = ['', ...new Set(options.flatMap(({ path }) => prefixes(path)))]

function prefixes(path: string): string[] {
  const parts = path.split('.')
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'))
}

/** An options object with `value` at `path`. */
function at(path: string, value: unknown): EngineOptions {
  const root: Record<string, unknown> = {}
  let node = root
  const keys = path.split('.')
  keys.forEach((k, i) => {
    node[k] = i === keys.length - 1 ? value : {}
    node = node[k] as Record<string, unknown>
  })
  return root as EngineOptions
}

function rejects(opts: unknown, path: string): void {
  expect(() => resolveEngineConfig(opts as EngineOptions)).toThrow(ConfigInvalidError)
  expect(() => resolveEngineConfig(opts as EngineOptions)).toThrow(
    new RegExp(`^${path.replaceAll('.', '\\.')}\\b`),
  )
}

/** Values of the wrong type, and out of range, for an option. */
function badValues(spec: OptionSpec): unknown[] {
  switch (spec.kind) {
    case 'int': {
      const out: unknown[] = ['8', 1.5, Number.NaN, null, true, Number.POSITIVE_INFINITY, spec.min! - 1, -1]
      if (spec.max !== undefined) out.push(spec.max + 1)
      return out
    }
    case 'number':
      return ['8', 0, -1, Number.NaN, null, ...(spec.infinite === true ? [] : [Number.POSITIVE_INFINITY])]
    case 'bool':
      return ['true', 1, null]
    case 'enum':
      return ['bogus', 1, null]
    case 'path':
      return ['', 1, null]
    case 'hostport':
      return ['', '9464', '127.0.0.1', '127.0.0.1:99999', 'a b:1', '::1:9464', 9464, null]
    case 'multiaddrs':
      return ['/ip4/127.0.0.1/tcp/0', ['not a multiaddr'], [1], null]
    case 'codecs':
      return ['none', [], ['zstd'], ['none', 'none'], ['none', 'gzip'], null]
    case 'chunking':
      return [
        'fixed:1m',
        { kind: 'fixed', size: 3 },
        { kind: 'cdc', minSize: 1, avgSize: 2, maxSize: 3 },
        null,
      ]
  }
}

describe('engine config: the memory budget and the fetch window', () => {
  it('defaults to a 16 MiB budget and a window of half of it', () => {
    const c = resolveEngineConfig({ workers: 1 })
    expect(c.memoryBudget).toBe(16 * MiB)
    expect(c.fetch.windowBytes).toBe(8 * MiB)
  })

  it('the default window follows the budget up to 16 MiB; a window given is kept as given', () => {
    expect(resolveEngineConfig({ workers: 1, memoryBudget: 64 * MiB }).fetch.windowBytes).toBe(16 * MiB)
    expect(resolveEngineConfig({ workers: 1, memoryBudget: 6 * MiB }).fetch.windowBytes).toBe(3 * MiB)
    const given = resolveEngineConfig({
      workers: 1,
      memoryBudget: 16 * MiB,
      fetch: { windowBytes: 16 * MiB },
    })
    expect(given.fetch.windowBytes).toBe(16 * MiB)
  })

  it('refuses a budget that cannot hold four chunks', () => {
    expect(() =>
      resolveEngineConfig({ workers: 1, memoryBudget: 8 * MiB, chunking: { kind: 'fixed', size: 4 * MiB } }),
    ).toThrow(ConfigInvalidError)
    const c = resolveEngineConfig({ workers: 1, chunking: { kind: 'fixed', size: 4 * MiB } })
    expect(c.fetch.windowBytes).toBe(8 * MiB)
  })
})

describe('engine config: the defaults', () => {
  it('are those an engine had before the table (pinned)', () => {
    expect(resolveEngineConfig({})).toEqual({
      listen: ['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0'],
      relays: [],
      dht: {
        bootstrap: [],
        enabled: false,
        maxProviders: 32,
        maxRecords: 1024,
        lookupMs: 30_000,
        refreshMs: 15_000,
        announceMs: 600_000,
      },
      thread: 'main',
      dataDir: undefined,
      memoryBudget: 16 * MiB,
      workers: Math.max(1, availableParallelism()),
      chunking: { kind: 'fixed', size: MiB },
      codec: 'auto',
      verifySource: 'auto',
      timeouts: {
        connectMs: 10_000,
        deadConnectionMs: 30_000,
        idleMs: 30_000,
        requestMs: 30_000,
        closeMs: 2_000,
      },
      fetch: {
        windowBytes: 8 * MiB,
        chunksPerRequest: 8,
        pagesPerRequest: 4,
        codecs: ['none', 'lz4', 'zstd'],
      },
      server: {
        maxQueuedRequests: 64,
        maxChunksPerRequest: 4096,
        maxPagesPerRequest: 16,
        readAhead: 4,
        maxFrame: 8 * MiB + 64 * KiB,
        frameTimeoutMs: 5_000,
        maxPartialBytesPerPeer: 64 * KiB,
        stallTimeoutMs: 10_000,
        spreadMs: 20_000,
        spreadChunks: 4096,
        maxOpenFiles: 256,
      },
      retry: {
        maxAttempts: 10,
        maxAttemptsFirstContact: 3,
        baseDelayMs: 500,
        maxDelayMs: 30_000,
        maxStallMs: 300_000,
      },
      journal: {
        enabled: true,
        flushBytes: 32 * MiB,
        flushIntervalMs: 2_000,
        minBytes: 4 * MiB,
        maxChunks: 2 ** 28,
      },
      limits: {},
      priorityWeights: { high: 4, normal: 2, low: 1 },
      maxActiveTransfers: 64,
      maxActiveTransfersPerPeer: 32,
      maxQueuedTransfersPerPeer: 100_000,
      gcAssistBytes: 0,
      serveCacheBytes: 8 * MiB,
      network: {
        maxStreamsPerPeer: 64,
        maxInboundStreamsPerPeer: 64,
        maxInboundStreams: 1024,
        maxQueuedOpensPerPeer: 256,
        maxConnections: 256,
        admission: {
          upgradeTimeoutMs: 3_000,
          maxPending: 128,
          maxPendingPerAddress: 16,
          pendingGraceMs: 250,
          maxConnectionsPerAddress: 64,
          maxConnectionsPerPeer: 4,
          maxNewPerAddressPerSecond: 64,
          newConnectionGraceMs: 1_000,
        },
      },
      buffers: { maxIdleBytes: 8 * MiB },
      directWrites: { enabled: true, slots: 4 },
      sessions: { maxIdle: 16, idleMs: 2_000 },
      swarm: {
        maxPeerFailures: 3,
        endgamePeers: 2,
        haveIntervalMs: 1_000,
        maxHaveReadsPerSec: 8,
        peerRetries: 3,
        waitForChunkMs: 30_000,
        windowChunks: 4096,
        maxRequestsPerPeer: 16,
        serve: true,
      },
      metrics: { listen: undefined },
    })
    expect(engineDefaults).toEqual(resolveEngineConfig({}))
  })

  it('are the table’s: every plain default in the table is the resolved one', () => {
    for (const { path, spec } of options) {
      if (typeof spec.default === 'function') continue
      expect(valueAt(engineDefaults, path), path).toEqual(spec.default)
    }
  })

  it('are what the lower modules use outside an engine', () => {
    expect(defaultJournalOptions).toEqual(engineDefaults.journal)
    expect(defaultAdmissionOptions).toEqual(engineDefaults.network.admission)
    expect(defaultBufferRecyclerOptions).toEqual(engineDefaults.buffers)
    expect(defaultPriorityWeights).toEqual(engineDefaults.priorityWeights)
    expect(defaultMemoryBudgetOptions.limit).toBe(engineDefaults.memoryBudget)
    expect(defaultWorkerPoolOptions.threads).toBe(engineDefaults.workers)
    expect(defaultWrapStreamOptions.idleTimeoutMs).toBe(engineDefaults.timeouts.idleMs)
    expect(DEFAULT_FIXED).toEqual(engineDefaults.chunking)
    expect(defaultNodeOptions).toMatchObject({
      listen: engineDefaults.listen,
      connectTimeoutMs: engineDefaults.timeouts.connectMs,
      maxConnections: engineDefaults.network.maxConnections,
      admission: engineDefaults.network.admission,
    })
    const { net, node } = resolveNetworkOptions({})
    const { maxConnections, admission, ...perPeer } = engineDefaults.network
    expect(net).toMatchObject(perPeer)
    expect(node).toMatchObject({ listen: engineDefaults.listen, maxConnections, admission })
  })

  it('are what an engine runs with', async () => {
    const engine = await createEngine({ workers: 1 })
    try {
      expect(engine.config).toEqual({ ...engineDefaults, workers: 1 })
      expect(engine.stats().memory.limitBytes).toBe(engineDefaults.memoryBudget)
    } finally {
      await engine.stop()
    }
  })

  it('cannot be changed through the shared defaults or a resolved config', () => {
    expect(Object.isFrozen(engineDefaults.network.admission)).toBe(true)
    expect(Object.isFrozen(engineDefaults.listen)).toBe(true)
    const c = resolveEngineConfig({})
    c.listen.push('/ip4/127.0.0.1/tcp/1')
    ;(c.fetch as { windowBytes: number }).windowBytes = 1
    expect(resolveEngineConfig({}).listen).toEqual(['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0'])
    expect(resolveEngineConfig({}).fetch.windowBytes).toBe(8 * MiB)
  })
})

describe('engine config: one rule set for every group', () => {
  it.each(options.map((o) => [o.path]))('%s left undefined takes its default', (path) => {
    expect(resolveEngineConfig(at(path, undefined))).toEqual(engineDefaults)
  })

  it.each(groups.filter((g) => g !== '').map((g) => [g]))(
    'group %s left undefined takes its defaults',
    (path) => {
      expect(resolveEngineConfig(at(path, undefined))).toEqual(engineDefaults)
      expect(resolveEngineConfig(at(path, {}))).toEqual(engineDefaults)
    },
  )

  it('undefined in fetch and in sessions alike (they once differed)', () => {
    expect(resolveEngineConfig({ fetch: { windowBytes: undefined } }).fetch.windowBytes).toBe(8 * MiB)
    expect(resolveEngineConfig({ sessions: { idleMs: undefined } }).sessions.idleMs).toBe(2_000)
    expect(resolveEngineConfig({ priorityWeights: { high: undefined } }).priorityWeights.high).toBe(4)
    expect(resolveEngineConfig({ swarm: { serve: undefined } }).swarm.serve).toBe(true)
  })

  it.each(groups.map((g) => [g === '' ? 'the top level' : g, g]))(
    'an unknown key in %s is refused by name',
    (_, g) => {
      const path = g === '' ? 'windowBytes' : `${g}.bogus`
      rejects(at(path, 1), path)
      rejects(at(g === '' ? 'bogus' : path, undefined), g === '' ? 'bogus' : path)
    },
  )

  it('a group that is not an object is refused by name', () => {
    for (const g of groups.filter((x) => x !== '')) {
      for (const bad of [1, 'x', null, []]) rejects(at(g, bad), g)
    }
    expect(() => resolveEngineConfig(null as unknown as EngineOptions)).toThrow(ConfigInvalidError)
  })

  it('createEngine(null) and chunking with a key it does not take are CONFIG_INVALID', async () => {
    await expect(createEngine(null as unknown as EngineOptions)).rejects.toThrow(ConfigInvalidError)
    rejects({ chunking: { kind: 'fixed', size: MiB, extra: 1 } as never }, 'chunking')
    expect(() =>
      resolveEngineConfig({
        chunking: { kind: 'cdc', minSize: MiB, avgSize: 2 * MiB, maxSize: 4 * MiB, size: 1 } as never,
      }),
    ).toThrow(/cdc chunking has no parameter size: it takes kind, minSize, avgSize, maxSize/)
  })

  it.each(options.map((o) => [o.path, o.spec]))(
    '%s: a wrong type or a value out of range is refused by its path',
    (path, spec) => {
      for (const bad of badValues(spec)) rejects(at(path, bad), path)
    },
  )

  it('keeps the values given at the edges of each range', () => {
    // Options a cross-field rule reads have their own cases below.
    const inRules = new Set(crossRules.flatMap((r) => r.paths))
    for (const { path, spec } of options) {
      if (spec.kind !== 'int' || inRules.has(path)) continue
      for (const edge of [spec.min!, spec.max ?? spec.min! + 1]) {
        expect(valueAt(resolveEngineConfig(at(path, edge)), path), path).toBe(edge)
      }
    }
    const unlimited = { downloadBytesPerSec: Number.POSITIVE_INFINITY }
    expect(resolveEngineConfig({ limits: unlimited }).limits).toMatchObject(unlimited)
    expect(resolveEngineConfig({ gcAssistBytes: 0 }).gcAssistBytes).toBe(0)
  })

  it('does not change the caller’s object, and shares none of it', () => {
    const given = deepFreeze({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      chunking: { kind: 'fixed', size: 2 * MiB },
      fetch: { windowBytes: undefined, chunksPerRequest: 4, codecs: ['none', 'zstd'] },
      network: { admission: { maxPending: 7 } },
      sessions: {},
    } satisfies EngineOptions)
    const before = JSON.stringify(given)
    const c = resolveEngineConfig(given)
    expect(JSON.stringify(given)).toBe(before)
    expect(c.listen).not.toBe(given.listen)
    expect(c.chunking).not.toBe(given.chunking)
    expect(c.fetch).not.toBe(given.fetch)
    expect(c.fetch.codecs).not.toBe(given.fetch.codecs)
    expect(c.network.admission).not.toBe(given.network.admission)
    expect(c.network.admission.maxPending).toBe(7)
    expect(c.fetch).toEqual({
      windowBytes: 8 * MiB,
      chunksPerRequest: 4,
      pagesPerRequest: 4,
      codecs: ['none', 'zstd'],
    })
  })
})

describe('engine config: cross-field rules', () => {
  const cases: Record<string, { bad: EngineOptions; good: EngineOptions; names: string }> = {
    listen: {
      bad: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/47123'] },
      good: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip6/::/tcp/4001', '/dns4/localhost/tcp/0'] },
      names: 'listen',
    },
    relays: {
      bad: { relays: ['/ip4/127.0.0.1/tcp/4003'] },
      good: { relays: ['/ip4/127.0.0.1/tcp/4003/p2p/12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA'] },
      names: 'relays',
    },
    'dht.bootstrap': {
      bad: {
        dht: {
          bootstrap: [
            '/ip4/127.0.0.1/tcp/4003/p2p/12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA/p2p-circuit',
          ],
        },
      },
      good: {
        dht: {
          bootstrap: ['/ip4/127.0.0.1/tcp/4003/p2p/12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA'],
        },
      },
      names: 'dht.bootstrap',
    },
    'memoryBudget,chunking': {
      bad: { memoryBudget: 8 * MiB, chunking: { kind: 'fixed', size: 4 * MiB } },
      good: { memoryBudget: 16 * MiB, chunking: { kind: 'fixed', size: 4 * MiB } },
      names: 'memoryBudget',
    },
    memoryBudget: {
      bad: { memoryBudget: totalmem() + MiB },
      good: { memoryBudget: Math.floor(totalmem() / 2) },
      names: 'memoryBudget',
    },
    'fetch.windowBytes,chunking': {
      bad: { fetch: { windowBytes: 2 * MiB - 1 }, chunking: { kind: 'fixed', size: 2 * MiB } },
      good: { fetch: { windowBytes: 2 * MiB }, chunking: { kind: 'fixed', size: 2 * MiB } },
      names: 'fetch.windowBytes',
    },
    'server.maxFrame,chunking': {
      bad: { server: { maxFrame: 4 * MiB }, chunking: { kind: 'fixed', size: 4 * MiB } },
      good: { server: { maxFrame: 4 * MiB + 1024 }, chunking: { kind: 'fixed', size: 4 * MiB } },
      names: 'server.maxFrame',
    },
    'sessions.idleMs,timeouts.idleMs': {
      bad: { sessions: { idleMs: 1_000 }, timeouts: { idleMs: 1_000 } },
      good: { sessions: { idleMs: 999 }, timeouts: { idleMs: 1_000 } },
      names: 'sessions.idleMs',
    },
    'retry.baseDelayMs,retry.maxDelayMs': {
      bad: { retry: { baseDelayMs: 2_000, maxDelayMs: 1_999 } },
      good: { retry: { baseDelayMs: 2_000, maxDelayMs: 2_000 } },
      names: 'retry.maxDelayMs',
    },
    'network.admission.maxConnectionsPerAddress,network.admission.maxPendingPerAddress': {
      bad: { network: { admission: { maxConnectionsPerAddress: 8, maxPendingPerAddress: 9 } } },
      good: { network: { admission: { maxConnectionsPerAddress: 9, maxPendingPerAddress: 9 } } },
      names: 'network.admission.maxConnectionsPerAddress',
    },
  }

  it('each rule of the table has a case here', () => {
    expect(crossRules.map((r) => r.paths.join(',')).sort()).toEqual(Object.keys(cases).sort())
  })

  it.each(Object.entries(cases))('%s', (_, { bad, good, names }) => {
    rejects(bad, names)
    expect(() => resolveEngineConfig(good)).not.toThrow()
  })

  it('a default that follows other options still obeys them', () => {
    expect(resolveEngineConfig({ timeouts: { idleMs: 1_000 } }).sessions.idleMs).toBe(500)
    expect(resolveEngineConfig({ memoryBudget: 4 * MiB }).fetch.windowBytes).toBe(2 * MiB)
    rejects({ memoryBudget: 4 * MiB, chunking: { kind: 'fixed', size: 4 * MiB } }, 'memoryBudget')
  })

  it('the rules inside a group apply where the network resolves that group alone', () => {
    expect(() =>
      resolveOption('network.admission', { maxConnectionsPerAddress: 8, maxPendingPerAddress: 9 }),
    ).toThrow(/^network\.admission\.maxConnectionsPerAddress/)
    expect(() => resolveNodeOptions({ admission: { bogus: 1 } as never })).toThrow(
      /network\.admission\.bogus/,
    )
    expect(() => resolveNetworkOptions({ maxStreamsPerPeer: 0 })).toThrow(/^network\.maxStreamsPerPeer/)
    expect(resolveOption('network.admission', undefined)).toEqual(engineDefaults.network.admission)
  })
})

function valueAt(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], o)
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

describe('engine config: the DHT', () => {
  it('is off unless asked for, and on when a bootstrap peer is named', () => {
    expect(resolveEngineConfig({}).dht.enabled).toBe(false)
    const boot = '/ip4/127.0.0.1/tcp/4003/p2p/12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA'
    expect(resolveEngineConfig({ dht: { bootstrap: [boot] } }).dht.enabled).toBe(true)
    expect(resolveEngineConfig({ dht: { enabled: true } }).dht.bootstrap).toEqual([])
  })
})
