/**
 * haul: move very large files between libp2p peers, verified chunk by chunk,
 * in bounded memory.
 *
 * @example
 * ```ts
 * import { createEngine } from 'haul'
 *
 * const sender = await createEngine({ dataDir: './sender-data' })
 * const { ticket } = await sender.publish('./big.iso')
 *
 * const receiver = await createEngine()
 * const transfer = receiver.fetch(ticket, './copy.iso', {
 *   onProgress: (p) => console.log(`${p.bytesDone}/${p.totalBytes} at ${p.rate} B/s`),
 * })
 * const result = await transfer.result // whole and verified, or a typed HaulError
 * await Promise.all([sender.stop(), receiver.stop()])
 * ```
 *
 * @packageDocumentation
 */

import type { EngineApi } from './engine/api-types.ts'
import type { EngineOptions } from './engine/config.ts'
import { Engine } from './engine/engine.ts'
import { assertRuntime } from './engine/runtime.ts'

export type {
  CollectionFetchOptions,
  CollectionProgress,
  CollectionResult,
} from './collection/fetch-collection.ts'
export type { CollectionIndex } from './collection/publish-collection.ts'
// A content id's text (`b…`: ServeEvent.cid, unpublish, fetch by content id) and its bytes
// (Published.index.cid, SwarmTicket.cid), each from the other.
export { cidFromString, cidToString } from './descriptor/cid.ts'
export type {
  EngineApi,
  FetchOptions,
  Published,
  PublishOptions,
  Seeded,
  SeedOptions,
  TransferHandle,
} from './engine/api-types.ts'
export type { EngineConfig, EngineOptions, EngineThread } from './engine/config.ts'
export type {
  EngineStats,
  MemoryStats,
  NetworkStats,
  ServingStats,
  SessionStats,
  TransferStats,
  WorkerStats,
} from './engine/stats.ts'
export * from './errors.ts'
export type { FetchLimits } from './fetch/fetch-context.ts'
export type { ResumeInfo } from './fetch/resume.ts'
export type { SwarmOptions } from './fetch/swarm-options.ts'
export type { Priority } from './resources/fair-queue.ts'
export type { RateLimitOptions } from './resources/rate-limit.ts'
export type { IndexOptions, IndexResult } from './serve/indexer.ts'
export type {
  ChunksServed,
  ContentRequested,
  ContentWithdrawn,
  RelaySlot,
  ServeEvent,
  ServeListener,
  SessionEnded,
  SessionOpened,
} from './serve/serve-events.ts'
export type { ServerLimits } from './serve/server-context.ts'
export type { JournalOptions } from './storage/journal-options.ts'
export type { Provider, SwarmTicket } from './ticket/multi-ticket.ts'
// decodeSwarmTicket reads every ticket, those engines write and the older versions; the
// version-1 codec (src/ticket/ticket.ts) is not exported: it reads none of what publish returns.
export { decodeSwarmTicket, encodeSwarmTicket, joinTickets } from './ticket/multi-ticket.ts'
export type { CheckProgress, TransferProgress } from './transfer/progress.ts'
export type { RetryInfo, RetryOptions } from './transfer/retry.ts'
export type { TransferStatus } from './transfer/transfer-machine.ts'
export type { FetchResult, SwarmStats, TransferRoute, TransferTimeouts } from './transfer/transfer-types.ts'
export type { ChunkingParams, Codec } from './types.ts'
export { Engine }

/**
 * Starts an engine. With `thread: 'worker'` it runs in a worker thread of its own and what
 * comes back stands for it with the same API (EngineApi): callbacks, signals and typed errors
 * cross the thread boundary, and the caller's event loop stays free during large transfers.
 */
export function createEngine(options: EngineOptions & { thread: 'worker' }): Promise<EngineApi>
export function createEngine(options?: EngineOptions & { thread?: 'main' | undefined }): Promise<Engine>
export function createEngine(options?: EngineOptions): Promise<EngineApi>
export async function createEngine(options: EngineOptions = {}): Promise<EngineApi> {
  assertRuntime(process.versions.node)
  // `null` or a non-object is refused by the config's own check (CONFIG_INVALID), in this thread.
  if (options?.thread !== 'worker') return Engine.create(options)
  // Loaded only here: an engine in the calling thread never loads comlink.
  const { ThreadEngine } = await import('./engine/thread/host.ts')
  return ThreadEngine.create(options)
}
