/**
 * The last step of every chunk a fetch receives, and the only way one reaches the disk: decompress
 * and hash it against its proven leaf in the worker pool, and only then write it at its offset in
 * the part file, record it in the journal and count it on the meter. A chunk that fails
 * verification counts against its peer (dropped past `swarm.maxPeerFailures`); a second copy of a
 * chunk already verified (endgame) is dropped unwritten.
 */
import { ChunkVerificationError, DecompressionError, type HaulError } from '../errors.ts'
import { type BufferRecycler, retireBuffer } from '../resources/buffer-recycler.ts'
import type { Codec, LeafEntry } from '../types.ts'
import type { WorkerPool } from '../workers/pool.ts'
import type { FetchLocal } from './local-transfer.ts'
import type { PeerLink } from './peer-link.ts'
import type { SwarmScheduler } from './scheduler.ts'
import type { SwarmOptions } from './swarm-options.ts'

export interface ChunkWriterDeps {
  readonly pool: WorkerPool
  readonly buffers?: BufferRecycler
  readonly swarm: Pick<SwarmOptions, 'maxPeerFailures'>
}

export interface ChunkWriterEvents {
  /** `link` served too many chunks that failed verification. */
  readonly ban: (link: PeerLink, why: HaulError) => void
  /** Chunk `index` is verified: `peer` no longer needs it (an endgame copy in flight there). */
  readonly cancelCopies: (peer: string, index: number) => void
  /** Chunk `index` is written and recorded. */
  readonly written: (index: number) => void
}

export class ChunkWriter {
  readonly #deps: ChunkWriterDeps
  readonly #local: FetchLocal
  readonly #sched: SwarmScheduler
  readonly #events: ChunkWriterEvents
  #busy = 0
  corruptChunks = 0

  constructor(deps: ChunkWriterDeps, local: FetchLocal, sched: SwarmScheduler, events: ChunkWriterEvents) {
    this.#deps = deps
    this.#local = local
    this.#sched = sched
    this.#events = events
  }

  /** Chunks being verified or written: a run is over only once none is. */
  get busy(): number {
    return this.#busy
  }

  /** Verifies chunk `index` from `link` and, when it is good and new, writes it. */
  async write(
    link: PeerLink,
    index: number,
    entry: LeafEntry,
    payload: Uint8Array,
    codec: Codec,
    signal: AbortSignal,
  ): Promise<void> {
    const { pool } = this.#deps
    const { part, journal, meter } = this.#local
    this.#busy++
    try {
      let plain: Uint8Array
      try {
        const buffers = this.#deps.buffers
        const into = codec === 'none' ? undefined : buffers?.take(entry.length)
        plain = await pool.decodeVerify(payload, codec, entry.length, entry.hash, {
          signal,
          ...(into === undefined ? {} : { into }),
          onSpare: this.#retire,
        })
      } catch (err) {
        if (!(err instanceof ChunkVerificationError || err instanceof DecompressionError)) throw err
        this.corruptChunks++
        link.failures++
        if (this.#sched.corrupt(link.id, index)) {
          // The peer is dropped for the kind of failure that tipped it: a payload that does not
          // decompress to its length (a zstd bomb, garbage) is DECOMPRESSION_FAILED.
          const failures = this.#deps.swarm.maxPeerFailures
          this.#events.ban(
            link,
            err instanceof DecompressionError
              ? new DecompressionError(
                  `${failures} chunks from this peer failed to decompress or verify; the last did not decompress to its length`,
                )
              : new ChunkVerificationError(`${failures} chunks from this peer failed verification`),
          )
        }
        return
      }
      if (this.#sched.isDone(index)) {
        this.#sched.arrived(link.id, index, entry.length, performance.now())
        this.#retire(plain)
        return
      }
      // Marked done before the write, so a second copy verifying meanwhile is not written twice.
      for (const other of this.#sched.verified(link.id, index)) this.#events.cancelCopies(other, index)
      await part.write(entry.offset, plain)
      // On disk now: the memory can carry the next chunk.
      this.#retire(plain)
      await journal.record(index, entry.length)
      link.attempts = 0
      link.verifiedBytes += entry.length
      meter.add(entry.length)
      this.#events.written(index)
    } finally {
      this.#busy--
    }
  }

  /**
   * Ends a chunk buffer this fetch owns whole (a payload, or what the pool decoded: a payload,
   * a recycled buffer, or a new one) once nothing reads it: reused, or freed now. Bound once,
   * so handing it to the pool for every chunk allocates nothing.
   */
  readonly #retire = (buf: Uint8Array): void => retireBuffer(this.#deps.buffers, buf)
}
