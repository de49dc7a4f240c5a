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

import type { EngineOptions } from './engine/config.ts'
import { Engine } from './engine/engine.ts'

export type { EngineConfig, EngineOptions } from './engine/config.ts'
export type { FetchOptions, Published, PublishOptions, Seeded, TransferHandle } from './engine/engine.ts'
export type { Priority } from './engine/fair-queue.ts'
export type { FetchLimits } from './engine/fetch-context.ts'
export type { IndexOptions, IndexResult } from './engine/indexer.ts'
export type { TransferProgress } from './engine/progress.ts'
export type { RateLimitOptions } from './engine/rate-limit.ts'
export type { ResumeInfo } from './engine/resume.ts'
export type { RetryInfo, RetryOptions } from './engine/retry.ts'
export type { ServerLimits } from './engine/server.ts'
export type { SwarmOptions } from './engine/swarm/options.ts'
export type { Provider, SwarmTicket } from './engine/swarm/ticket.ts'
export { decodeSwarmTicket, encodeSwarmTicket, joinTickets } from './engine/swarm/ticket.ts'
export type { Ticket } from './engine/ticket.ts'
export { decodeTicket, encodeTicket } from './engine/ticket.ts'
export type { TransferStatus } from './engine/transfer-machine.ts'
export type { FetchResult, SwarmStats, TransferTimeouts } from './engine/transfer-types.ts'
export * from './errors.ts'
export type { JournalOptions } from './storage/journal-options.ts'
export type { ChunkingParams, Codec } from './types.ts'
export { Engine }

export function createEngine(options?: EngineOptions): Promise<Engine> {
  return Engine.create(options)
}
