/**
 * What one fetch runs with, built from the engine (FetchesDeps): its links to providers, the
 * journal (every size keeps one when the fetch seeds), what it has verified shared through the
 * registry, a providing fetch announced on the DHT at its first chunk, retries counted in the
 * metrics, and the destination's check (a file already there indexed with the engine's workers
 * and budget). When a fetch runs is fetches.ts.
 */
import type { DescriptorHeader } from '../descriptor/header.ts'
import type { DestinationPolicy } from '../fetch/destination.ts'
import { FetchJob } from '../fetch/fetch-job.ts'
import type { LinkDeps } from '../fetch/peer-link.ts'
import type { AdmissionPlace } from '../resources/admission.ts'
import type { RateLimiter } from '../resources/rate-limit.ts'
import type { ProviderSearch } from '../routing/provider-search.ts'
import { indexFile, withScratchDescriptor } from '../serve/indexer.ts'
import type { PublishedContent } from '../serve/registry.ts'
import type { Provider } from '../ticket/multi-ticket.ts'
import type { FetchOptions, InternalFetchOptions } from './api-types.ts'
import type { FetchesDeps } from './fetches.ts'

/** What a link to a provider needs from the engine, a fetch's and an ask's alike. */
export function linkDeps(deps: FetchesDeps): Omit<LinkDeps, 'cid'> {
  const c = deps.config
  return {
    network: deps.network,
    pool: deps.pool,
    budget: deps.fetchBudget,
    buffers: deps.buffers,
    limits: c.fetch,
    timeouts: c.timeouts,
    maxFrame: c.server.maxFrame,
    sessions: deps.sessions,
    recentPeers: deps.recentPeers,
  }
}

/**
 * A fetch's job, once admitted. `seeding`: the fetch serves what it has verified so far
 * (partial seeding; FetchOptions.swarm).
 */
export function newFetchJob(
  deps: FetchesDeps,
  ticket: { cid: Uint8Array; providers: Provider[] },
  dest: string,
  limits: { limiter: RateLimiter; maxRequestBytes: number | undefined },
  place: AdmissionPlace,
  seeding: boolean,
  opts: InternalFetchOptions,
  search: ProviderSearch | undefined,
): FetchJob {
  const c = deps.config
  const share =
    seeding && c.swarm.serve
      ? (content: PublishedContent) => {
          if (!deps.registry.addIfAbsent(content)) return () => {}
          return () => deps.registry.removeIfSame(content)
        }
      : undefined
  // A providing fetch is announced once it has a chunk to give (a record of a peer with nothing
  // would take a place in lookups, which return at most DHT_K providers); a completed one is
  // served as a whole file (Engine's provide), a failed one withdraws.
  const routing = opts.provide === true && share !== undefined ? deps.routing() : undefined
  let announced = false
  const onChunk =
    routing === undefined
      ? opts.onChunk
      : (index: number) => {
          if (!announced) {
            announced = true
            void routing.announce(ticket.cid)
          }
          opts.onChunk?.(index)
        }
  return new FetchJob(
    {
      ...linkDeps(deps),
      retry: c.retry,
      // Partial seeding serves what the journal says is verified, so every size keeps one.
      journal: share === undefined ? c.journal : { ...c.journal, minBytes: 0 },
      directWrites: opts.scratch === true ? undefined : deps.directWrites,
      scratch: opts.scratch,
      swarm: c.swarm,
      ...limits,
      place,
      destination: destinationPolicy(deps, opts),
      share,
      accept: opts.accept,
      stillLooking: search === undefined ? undefined : () => search.stillLooking(),
    },
    ticket,
    dest,
    {
      onProgress: opts.onProgress,
      onRetry: countRetries(deps, opts.onRetry),
      onResume: opts.onResume,
      onChunk,
    },
  )
}

/** `onRetry`, counting each retry first when metrics are on. */
function countRetries(deps: FetchesDeps, onRetry: FetchOptions['onRetry']): FetchOptions['onRetry'] {
  const tally = deps.tally()
  if (tally === undefined) return onRetry
  return (info) => {
    tally.retried(info.error)
    onRetry?.(info)
  }
}

function destinationPolicy(deps: FetchesDeps, opts: FetchOptions): DestinationPolicy {
  return {
    overwrite: opts.overwrite === true,
    contentIdOf: (path, header, signal, onChunk) => contentIdOf(deps, path, header, signal, onChunk),
  }
}

/** The content id of a local file cut as `header` says: indexed with this engine's workers and budget. */
async function contentIdOf(
  deps: FetchesDeps,
  path: string,
  header: DescriptorHeader,
  signal: AbortSignal,
  onChunk?: (bytes: number) => void,
): Promise<Uint8Array> {
  let hashed = 0
  const r = await withScratchDescriptor((descriptorPath) =>
    indexFile(path, {
      chunking: header.chunking,
      pageSize: header.pageSize,
      pool: deps.pool,
      budget: deps.budget,
      descriptorPath,
      signal,
      ...(onChunk === undefined
        ? {}
        : {
            onProgress: (done: number) => {
              onChunk(done - hashed)
              hashed = done
            },
          }),
    }),
  )
  return r.cid
}
