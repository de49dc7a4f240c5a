/**
 * Every engine option: its default, kind and range, and its line in docs/LIMITS.md (generated from
 * here: test/engine/config-docs.test.ts). The lower modules that need a default for use outside
 * an engine read it from `engineDefaults` (./resolve.ts), never from a copy of their own.
 *
 * It imports only modules that read no default (constants, DEFAULT_FIXED), so that any module
 * may read them; src/engine/config.ts holds the table and the option types (./types.ts) to the
 * same options at compile time.
 */
import { availableParallelism } from 'node:os'
import { DEFAULT_FIXED } from '../../chunking/params.ts'
import { ALL_INTERFACES } from '../../net/defaults.ts'
import { MAX_FRAME_LIMIT, MIN_MAX_FRAME } from '../../protocol/frame.ts'
import { MIN_GC_ASSIST_BYTES } from '../../resources/gc-assist.ts'
import { MAX_DIRECT_SLOTS } from '../../storage/direct-writes.ts'
import { defaultMaxOpenFiles } from '../../storage/fd-limit.ts'
import { type ChunkingParams, CODECS, type Codec, KiB, MiB } from '../../types.ts'
import { bytes, type ConfigOf, count, flag, ms, oneOf, option, rate, weight } from './schema.ts'

/** Most worker threads an engine's pool runs. */
export const MAX_WORKERS = 256

export const optionTable = {
  listen: option<string[]>({
    kind: 'multiaddrs',
    default: [...ALL_INTERFACES],
    doc: "libp2p listen multiaddrs: every interface, IPv4 and IPv6, unless given (`['/ip4/127.0.0.1/tcp/0']` keeps a node to this machine); IPv6 is left out where the host has none; `[]` listens nowhere: the engine fetches, and without `relays` its publish and seed are `CONFIG_INVALID` (a ticket could name no address); `DEBUG=libp2p:*` at start gives libp2p's logs",
  }),
  relays: option<string[]>({
    kind: 'multiaddrs',
    default: [],
    doc: 'circuit relays to reserve a slot on (each `/…/p2p/<relay peer id>`, as `haul relay` prints it): the relayed address joins the ticket after the direct ones, and start fails when a relay cannot be reached',
  }),
  dht: {
    bootstrap: option<string[]>({
      kind: 'multiaddrs',
      default: [],
      doc: 'peers to join a Kademlia DHT through (each `/…/p2p/<peer id>`); giving any turns the DHT on. No public bootstrap is ever contacted unless named here',
    }),
    enabled: flag({
      default: (c: { dht: { bootstrap: string[] } }) => c.dht.bootstrap.length > 0,
      defaultDoc: 'on when `dht.bootstrap` names a peer',
      doc: 'run the DHT (`/haul/kad/1.0.0`, server mode): with no bootstrap peer, this engine starts one others join. Published content is announced and served to anyone who names its content id; `fetch(contentId)` finds providers on it',
    }),
    maxProviders: count({
      min: 1,
      max: 64,
      default: 32,
      doc: 'providers one fetch takes from DHT lookups (each address-checked; a provider that lacks the content is dropped)',
    }),
    maxRecords: count({
      min: 1,
      default: 1024,
      doc: 'provider records one lookup reads before it stops (a flood of records costs at most this)',
    }),
    lookupMs: ms({
      min: 10,
      default: 30_000,
      doc: 'a fetch by content id that finds no provider in this long fails with `NO_PROVIDER`',
    }),
    refreshMs: ms({
      min: 10,
      default: 15_000,
      doc: 'a running fetch by content id looks for more providers this often; an announcement no peer took is sent again within this (from 1 s, doubling)',
    }),
    announceMs: ms({
      min: 10,
      default: 600_000,
      doc: 'published content is announced again this often (provider records live 48 hours)',
    }),
  },
  dataDir: option<string | undefined>({
    kind: 'path',
    default: undefined,
    defaultDoc: 'none',
    doc: 'identity key (`identity.key`, mode 0600), descriptors of published files (`descriptors/`), ticket secrets (`secrets/`), what each path last published (`published/`, so a restarted sender tells the tickets of a file changed meanwhile `CONTENT_CHANGED`, and for its first minute those of content not published again yet `CONTENT_PREPARING`) and the ports last listened on (`listen-port`); without it, a fresh identity, secrets and ports each start, and descriptors in `$XDG_CACHE_HOME/haul/descriptors` (`~/.cache/haul`)',
  }),
  thread: oneOf(
    { main: true, worker: true },
    {
      default: 'main',
      doc: "where `createEngine` runs the engine: `main`, the calling thread; `worker`, a worker thread of its own behind the same API (comlink), so the caller's event loop stays responsive during large transfers",
    },
  ),
  memoryBudget: bytes({
    min: 4 * MiB,
    // At 1,000 concurrent transfers the receiver's peak follows the budget (README, Memory and
    // limits), and one transfer, whose fetch window is half the budget, runs as fast as with 64.
    default: 16 * MiB,
    doc: 'every chunk buffer in flight, across all transfers (at least 4 chunks)',
  }),
  workers: count({
    min: 1,
    max: MAX_WORKERS,
    default: () => Math.max(1, availableParallelism()),
    defaultDoc: 'cores',
    doc: 'worker threads for hashing, compression, CDC (cores: `os.availableParallelism()`): one starts with the engine, the others while tasks wait for one, each ending after 30 s without',
  }),
  chunking: option<ChunkingParams>({
    kind: 'chunking',
    default: DEFAULT_FIXED,
    doc: 'how `publish` cuts files: fixed power-of-two sizes, or content-defined (`cdc`)',
  }),
  codec: oneOf(
    { none: true, lz4: true, zstd: true, auto: true },
    {
      default: 'auto',
      doc: 'per-chunk compression when serving: `none`, `lz4`, `zstd`, `auto` (per receiving peer, plain or zstd at the level that measurably delivers most; a chunk a probe finds incompressible goes plain)',
    },
  ),
  verifySource: oneOf(
    { auto: true, always: true },
    {
      default: 'auto',
      doc: 'when serving hashes a chunk before sending it: `auto` only for files changed within 2 s of being published, files touched since (a chmod, a `touch`), and partial seeds; `always` every chunk (filesystems whose ctime cannot be trusted)',
    },
  ),
  timeouts: {
    connectMs: ms({ min: 10, default: 10_000, doc: 'dialing a peer (TCP connect, Noise, yamux)' }),
    deadConnectionMs: ms({
      // A slow link moves bytes in bursts seconds apart: at 256 kbit/s a 1 s bound cut healthy
      // connections (a tester, 3 retries in 3 tries), 3 s did not.
      min: 5_000,
      default: 30_000,
      doc: 'a connection that reads nothing and gets none of its bytes into the network this long is closed (`TIMEOUT`, retried): its peer is gone. Pings go out three times as often, so a healthy idle connection is never this quiet; a slow link still moving bytes either way is not cut (at least 5 s: such a link moves bytes in bursts seconds apart)',
    }),
    idleMs: ms({
      min: 10,
      default: 30_000,
      doc: 'a stream with no bytes either way is closed (`TIMEOUT`, retried)',
    }),
    requestMs: ms({
      min: 10,
      default: 30_000,
      doc: 'a request with no new reply fails with `TIMEOUT` (retried; a repeated frame is not progress; a reply frame still arriving at 64 KiB or more a period is a reply)',
    }),
    closeMs: ms({
      min: 10,
      default: 2_000,
      doc: 'a stream being closed waits this long for its peer, then is reset, whatever the peer sends',
    }),
  },
  fetch: {
    windowBytes: bytes({
      min: 1,
      // Never more than half the budget, so that one stalled transfer (its leases held until
      // its stream's idle timeout) leaves the other half to the rest. 8 MiB ran as fast as 16
      // on loopback (1 GiB, interleaved: 225–232 against 211–240 MB/s); 16 ran no slower than
      // 32 (median 220 against 195 MB/s) and kept the receiver ~25 MB lower.
      default: (c: { memoryBudget: number }) => Math.min(16 * MiB, Math.floor(c.memoryBudget / 2)),
      defaultDoc: 'min(16 MiB, half the budget)',
      doc: 'bytes requested and not yet written, per transfer (at least one chunk)',
    }),
    chunksPerRequest: count({ min: 1, default: 8, doc: 'chunks named in one get-chunks request' }),
    pagesPerRequest: count({ min: 1, default: 4, doc: 'descriptor pages asked for at once' }),
    codecs: option<readonly Codec[]>({
      kind: 'codecs',
      default: CODECS,
      doc: "codecs this engine takes chunks in, said in its hello; a provider sends the rest plain. `['none']`: no decompressing, for a receiver whose cores, not its link, are the limit",
    }),
  },
  server: {
    maxQueuedRequests: count({
      min: 1,
      default: 64,
      doc: 'requests a peer may queue on one stream; more get `TOO_MANY_REQUESTS`',
    }),
    maxChunksPerRequest: count({ min: 1, default: 4096, doc: 'chunks one request may name' }),
    maxPagesPerRequest: count({ min: 1, default: 16, doc: 'descriptor pages one request may name' }),
    readAhead: count({
      min: 1,
      default: 4,
      doc: "chunks read and encoded ahead of the one being sent, per stream (within the peer's share of the budget)",
    }),
    maxFrame: bytes({
      min: MIN_MAX_FRAME,
      max: MAX_FRAME_LIMIT,
      default: 8 * MiB + 64 * KiB,
      doc: 'largest frame accepted, announced in hello (more than the largest chunk)',
    }),
    frameTimeoutMs: ms({
      min: 1,
      default: 5_000,
      doc: 'a request frame must be whole this long after its first byte, else the stream is closed with `TIMEOUT`',
    }),
    maxPartialBytesPerPeer: bytes({
      min: 1,
      default: 64 * KiB,
      doc: 'unfinished request frames one peer may have buffered, across its streams; over it, `TOO_MANY_REQUESTS`',
    }),
    stallTimeoutMs: ms({
      min: 1,
      default: 10_000,
      doc: 'a stream whose peer takes none of its replies this long is reset (after a fifth of it when the peer is over its share and others wait for memory)',
    }),
    spreadMs: ms({
      min: 0,
      default: 20_000,
      doc: 'under `limits.uploadBytesPerSec`, chunks waiting for their turn go least-sent first: one this engine has sent n times already lets fresher ones that came up to this × n / (n + 1) after it go first (never a whole spreadMs), so a slow seeder gives a swarm chunks it lacks first; 0: first come, first served',
    }),
    spreadChunks: count({
      min: 1,
      default: 4096,
      doc: 'chunks whose send counts that order keeps (the least recently sent are forgotten first)',
    }),
    maxOpenFiles: count({
      min: 1,
      // A quarter of the process's `ulimit -n` (256 of the usual 1,024): the rest is left to
      // sockets, fetches' files and the embedding application, however many files are published.
      default: () => defaultMaxOpenFiles(),
      defaultDoc: 'a quarter of the open-file limit, 16 to 256',
      doc: "files open at once for serving, engine-wide: published files, their descriptors and collections' files, opened on demand, the least recently read closed beyond this (files being read come on top)",
    }),
  },
  retry: {
    maxAttempts: count({
      min: 1,
      default: 10,
      doc: 'failures in a row without progress before `RETRIES_EXHAUSTED` (1: no retrying)',
    }),
    maxAttemptsFirstContact: count({
      min: 1,
      default: 3,
      doc: 'attempts before any provider said hello (not dialed, or silent on its stream), for `PEER_UNREACHABLE` and `TIMEOUT`, unless another fetch of this engine heard from one within `retry.maxStallMs` (an outage then); also for `TIMEOUT` while no provider has sent a chunk byte in this fetch (hello, perhaps the header, then nothing)',
    }),
    baseDelayMs: ms({
      min: 0,
      default: 500,
      doc: 'delay before the first retry; doubles with each failure in a row, jittered',
    }),
    maxDelayMs: ms({ min: 1, default: 30_000, doc: 'ceiling of the retry delay' }),
    maxStallMs: ms({
      min: 1,
      default: 300_000,
      doc: 'longest time without a verified chunk that still counts as progress, and how long an outage (a provider reached earlier away, by this fetch or, since its last hello, by another) or a provider indexing the file again (`CONTENT_PREPARING`) is retried whatever the attempts',
    }),
  },
  journal: {
    enabled: flag({ default: true, doc: 'keep a resume journal beside `<dest>.part`' }),
    flushBytes: bytes({
      min: 1,
      default: 32 * MiB,
      doc: 'chunk bytes written and not yet synced; a flush starts at half. Also what a check after a crash reads between notes of how far it got (a check cut short again goes on from there)',
    }),
    flushIntervalMs: ms({ min: 1, default: 2_000, doc: 'a flush also starts this long after the last' }),
    minBytes: bytes({
      min: 0,
      default: 4 * MiB,
      doc: 'transfers of at most this many bytes keep no journal (a resume re-hashes); 0: all keep one',
    }),
    maxChunks: count({
      min: 1,
      default: 2 ** 28,
      defaultDoc: '2^28',
      doc: 'most chunks a journal tracks (1 bit each: 32 MiB of bitmap at the default); more fails with `BUDGET_EXCEEDED`',
    }),
  },
  limits: {
    uploadBytesPerSec: rate('all uploads together (the serving side), bytes per second'),
    downloadBytesPerSec: rate('all downloads together (the fetching side), bytes per second'),
    perTransferDownloadBytesPerSec: rate(
      "every transfer's own download limit, unless its fetch's `maxBytesPerSec` says otherwise",
    ),
    burstBytes: option<number | undefined>({
      kind: 'int',
      unit: 'bytes',
      min: 1,
      default: undefined,
      defaultDoc: 'max(64 KiB, rate / 10)',
      doc: 'depth of each token bucket',
    }),
  },
  priorityWeights: {
    high: weight({ default: 4, doc: 'share of download bandwidth of a `high` fetch under contention' }),
    normal: weight({ default: 2, doc: 'same, `normal` (a fetch without a priority)' }),
    low: weight({ default: 1, doc: 'same, `low`' }),
  },
  maxActiveTransfers: count({
    min: 1,
    default: 64,
    doc: 'fetches running at once, engine-wide; the rest wait in FIFO order holding no stream, file or buffer',
  }),
  maxActiveTransfersPerPeer: count({
    min: 1,
    default: 32,
    doc: 'fetches running at once per peer (the line adapts to the link); the rest wait in FIFO order',
  }),
  maxQueuedTransfersPerPeer: count({
    min: 0,
    default: 100_000,
    doc: 'fetches waiting per peer; one more fails with `TOO_MANY_REQUESTS`',
  }),
  serveCacheBytes: bytes({
    min: 0,
    // Half the budget: with the receivers of one content kept within this window of each other
    // (src/serve/pack-pacer.ts), 50 receivers of 256 MiB read each chunk about once (bench/fanout.ts).
    default: (c: { memoryBudget: number }) => Math.floor(c.memoryBudget / 2),
    defaultDoc: 'half the budget',
    doc: 'encoded chunks shared by every receiver of the same content, inside the budget; given back to budget waiters after idle buffers; a read a window this size ahead of another active receiver of the content waits for it (0: off, no sharing or pacing)',
  }),
  gcAssistBytes: bytes({
    min: MIN_GC_ASSIST_BYTES,
    orZero: true,
    default: 0,
    defaultDoc: '0 (off)',
    doc: 'start a full GC whenever ArrayBuffer memory grew this much: lower peak RSS for CPU, process-wide',
  }),
  network: {
    maxStreamsPerPeer: count({
      min: 1,
      default: 64,
      doc: 'outbound streams open at once to one peer; more opens wait',
    }),
    maxInboundStreamsPerPeer: count({
      min: 1,
      default: 64,
      doc: 'inbound streams one peer may have open here; more are refused with `TOO_MANY_REQUESTS`',
    }),
    maxInboundStreams: count({
      min: 1,
      // Each open stream holds ~40 KB of live heap here (its session, its queued requests and
      // their promises): 30 peers holding 64 unread streams each grew a sender's heap by 67 MB
      // with 1,824 of them open, by 42 MB with this bound (docs/BENCHMARKS.md, Under attack).
      default: 1024,
      doc: 'inbound streams all peers together may have open here; more are refused with `TOO_MANY_REQUESTS`',
    }),
    maxQueuedOpensPerPeer: count({
      min: 0,
      default: 256,
      doc: 'stream opens waiting per peer; more fail with `TOO_MANY_REQUESTS`',
    }),
    maxConnections: count({
      min: 1,
      default: 256,
      doc: 'connections the node keeps; an authenticated newcomer replaces an idle one',
    }),
    admission: {
      upgradeTimeoutMs: ms({
        min: 1,
        default: 3_000,
        doc: 'time an inbound socket has to finish its handshake, from TCP accept',
      }),
      maxPending: count({
        min: 1,
        default: 128,
        doc: 'inbound sockets in their handshake at once; a newcomer replaces the oldest one past `pendingGraceMs` of the address holding the most, if that is more than its own holds',
      }),
      maxPendingPerAddress: count({
        min: 1,
        default: 16,
        doc: "the same, from one address; a newcomer replaces that address's oldest one past `pendingGraceMs`",
      }),
      pendingGraceMs: ms({
        min: 1,
        default: 250,
        doc: 'how long a socket in its handshake is safe from being replaced by a newcomer',
      }),
      maxConnectionsPerAddress: count({
        min: 1,
        default: 64,
        doc: 'inbound connections from one address, those in their handshake included',
      }),
      maxConnectionsPerPeer: count({
        // Two peers may dial each other at once.
        min: 2,
        default: 4,
        doc: "connections with one peer id; a newcomer replaces that peer's oldest idle one",
      }),
      maxNewPerAddressPerSecond: count({
        min: 1,
        default: 64,
        doc: 'new inbound sockets accepted from one address per second',
      }),
      newConnectionGraceMs: ms({
        min: 1,
        default: 1_000,
        doc: 'a connection younger than this is closed to make room only for a newcomer from a less crowded address',
      }),
    },
  },
  buffers: {
    maxIdleBytes: bytes({ min: 0, default: 8 * MiB, doc: 'finished chunk buffers kept for reuse (0: off)' }),
  },
  directWrites: {
    enabled: flag({
      default: true,
      doc: 'write verified chunks with O_DIRECT, where the filesystem accepts it',
    }),
    slots: count({
      min: 1,
      max: MAX_DIRECT_SLOTS,
      default: 4,
      doc: 'staging slots of 1 MiB each (fixed memory), also the most direct writes in flight',
    }),
  },
  sessions: {
    maxIdle: count({
      min: 0,
      default: 16,
      doc: 'streams kept open after a fetch, for the next fetch from the same peer (0: off)',
    }),
    idleMs: ms({
      min: 1,
      default: (c: { timeouts: { idleMs: number } }) => Math.min(2_000, Math.floor(c.timeouts.idleMs / 2)),
      defaultDoc: 'min(2 s, half of `timeouts.idleMs`)',
      doc: 'an idle kept stream is closed after this long (less than `timeouts.idleMs`)',
    }),
  },
  swarm: {
    maxPeerFailures: count({
      min: 1,
      default: 3,
      doc: 'chunks failing verification from one peer before it is dropped for that content',
    }),
    endgamePeers: count({
      min: 1,
      default: 2,
      doc: 'most peers one chunk is requested from at once in the endgame (1: no endgame)',
    }),
    haveIntervalMs: ms({
      min: 1,
      default: 1_000,
      doc: "how often a partial seeder's have-bitmap is read again",
    }),
    maxHaveReadsPerSec: count({
      min: 1,
      default: 8,
      doc: 'have-bitmap reads one fetch makes per second at most, over all its partial seeders: with more than this many, each is read less often than haveIntervalMs',
    }),
    peerRetries: count({
      min: 0,
      default: 3,
      doc: 'reconnects to a lost provider in a row, without a verified chunk between, before it is left out',
    }),
    waitForChunkMs: ms({
      min: 1,
      default: 30_000,
      doc: 'how long a needed chunk may be held by no live provider before `NO_PROVIDER`',
    }),
    windowChunks: count({
      min: 1,
      default: 4096,
      doc: 'chunks the scheduler considers at once, rarest first (and leaf pages held: window / 1024 + 2)',
    }),
    maxRequestsPerPeer: count({ min: 1, default: 16, doc: 'get-chunks requests open per peer' }),
    serve: flag({
      default: true,
      doc: "serve a running multi-peer fetch's verified chunks to others (partial seeding)",
    }),
  },
  metrics: {
    listen: option<string | undefined>({
      kind: 'hostport',
      default: undefined,
      defaultDoc: 'off',
      doc: 'serve Prometheus metrics at `http://<host:port>/metrics` (`127.0.0.1:9464`; port 0: any free port, see `engine.metricsAddress`); names in docs/METRICS.md',
    }),
  },
}

/** What resolving the table gives: every option's value, by group. */
export type TableConfig = ConfigOf<typeof optionTable>
