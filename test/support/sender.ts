import { resolveEngineConfig } from '../../src/engine/config.ts'
import { Network } from '../../src/net/network.ts'
import type { FrameStream } from '../../src/net/stream-io.ts'
import { PROTOCOL_ID } from '../../src/protocol/messages.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { ChunkCache } from '../../src/serve/chunk-cache.ts'
import { indexFile } from '../../src/serve/indexer.ts'
import { openPublished } from '../../src/serve/publish.ts'
import { ContentRegistry } from '../../src/serve/registry.ts'
import { ServeShares } from '../../src/serve/serve-shares.ts'
import { serveStream } from '../../src/serve/server.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import type { ChunkingParams } from '../../src/types.ts'
import { WorkerPool } from '../../src/workers/pool.ts'

/**
 * A sender assembled from the engine's real parts (network, registry, worker
 * pool, serving session), with a hook on each inbound stream, so a test can
 * make a real serving peer misbehave on the wire.
 */
export async function startSender(opts: {
  chunking: ChunkingParams
  wrap?: (s: FrameStream) => FrameStream
  codec?: 'none' | 'lz4' | 'zstd' | 'auto'
}) {
  const config = resolveEngineConfig({ chunking: opts.chunking, workers: 1, codec: opts.codec ?? 'none' })
  const network = await Network.create({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const pool = new WorkerPool({ threads: 1 })
  const budget = new MemoryBudget({ limit: config.memoryBudget })
  const shares = new ServeShares(budget)
  const registry = new ContentRegistry()
  const stop = new AbortController()
  let sessions = 0
  await network.handle(PROTOCOL_ID, async (stream) => {
    sessions++
    await serveStream(opts.wrap === undefined ? stream : opts.wrap(stream), {
      registry,
      pool,
      shares,
      cache: new ChunkCache(budget, 0),
      codec: config.codec,
      limits: config.server,
      signal: stop.signal,
    })
  })
  return {
    network,
    budget,
    get sessions() {
      return sessions
    },
    async publish(path: string): Promise<string> {
      const index = await indexFile(path, { chunking: opts.chunking, pool, budget })
      registry.add(await openPublished(path, index))
      return encodeTicket({ cid: index.cid, peerId: network.peerId, addrs: network.addresses })
    },
    async stop(): Promise<void> {
      stop.abort()
      await registry.closeAll()
      await network.stop()
      await pool.destroy()
    },
  }
}

/**
 * Chunk frames are written as [22-byte header, payload], a request's last one followed by the
 * parts of its end frame in the same write; the chunk index is the u64 at byte 9.
 */
export function chunkIndexOf(parts: readonly Uint8Array[]): number | undefined {
  if (parts.length < 2 || parts[0]!.length !== 22 || parts[0]![4] !== 0x15) return undefined
  const view = new DataView(parts[0]!.buffer, parts[0]!.byteOffset, 22)
  return view.getUint32(9) * 2 ** 32 + view.getUint32(13)
}

/**
 * Wraps a stream so that chunk payloads chosen by `shouldCorrupt` go out with one byte flipped,
 * or (`garble`) every byte 0xff: a payload no codec decodes.
 */
export function corrupting(
  shouldCorrupt: (index: number, sent: number) => boolean,
  how: 'flip' | 'garble' = 'flip',
) {
  const sentCount = new Map<number, number>()
  const stats = { corrupted: 0 }
  const wrap = (stream: FrameStream): FrameStream =>
    new Proxy(stream, {
      get(target, prop, receiver) {
        if (prop === 'write') {
          return (parts: readonly Uint8Array[], o?: { signal?: AbortSignal }) => {
            const index = chunkIndexOf(parts)
            if (index !== undefined) {
              const n = (sentCount.get(index) ?? 0) + 1
              sentCount.set(index, n)
              if (shouldCorrupt(index, n) && parts[1]!.length > 0) {
                const bad = Uint8Array.from(parts[1]!)
                if (how === 'garble') bad.fill(0xff)
                else bad[bad.length >> 1]! ^= 0xff
                stats.corrupted++
                return target.write([parts[0]!, bad, ...parts.slice(2)], o)
              }
            }
            return target.write(parts, o)
          }
        }
        const v = Reflect.get(target, prop, receiver)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
  return Object.assign(wrap, { stats })
}
