import type { EngineStats } from '../../src/index.ts'

/** An idle engine's snapshot. */
export const IDLE: EngineStats = {
  memory: {
    limitBytes: 16 << 20,
    usedBytes: 0,
    workBytes: 0,
    availableBytes: 16 << 20,
    peakBytes: 0,
    waiting: 0,
    fetches: { limitBytes: 12 << 20, usedBytes: 0, waiting: 0 },
    buffers: { idleBytes: 0, handedBytes: 0, hits: 0, misses: 0, freed: 0 },
  },
  transfers: { unfinished: 0, active: 0, queued: 0 },
  serving: {
    contents: 0,
    peers: 0,
    peersLeasing: 0,
    leasedBytes: 0,
    partialFrameBytes: 0,
    chunks: { reads: 0, served: 0, cacheHits: 0, cachedBytes: 0, cacheLimitBytes: 0, pacedReads: 0 },
    codecSteps: { none: 0, 'zstd-1': 0, 'zstd-3': 0, 'zstd-9': 0 },
  },
  network: {
    connections: 0,
    openStreams: 0,
    streamsOpened: 0,
    socketQueuedBytes: 0,
    admission: {} as EngineStats['network']['admission'],
  },
  workers: { threads: 1, running: 1, tasksInFlight: 0, tasksQueued: 0 },
  sessions: { idle: 0 },
}
