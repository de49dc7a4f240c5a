import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { engineDefaults } from '../engine/config/resolve.ts'
import { ConfigInvalidError } from '../errors.ts'
import { KiB, MiB } from '../types.ts'
import { Libp2pFrameStream } from './libp2p-frame-stream.ts'
import type { WriteOptions } from './stream-writer.ts'
import type { ConnectionSendLedger } from './tuning/send-ledger.ts'

export { COPY_SLICE_BYTES, type WriteOptions } from './stream-writer.ts'

/**
 * FrameStream, the one way the rest of haul reads and writes a libp2p stream: its interface,
 * its options, and wrapStream, which makes one (libp2p-frame-stream.ts; its write side is
 * stream-writer.ts).
 */

export interface FrameStream {
  /**
   * Sends byte chunks honouring backpressure: before each part waits until the
   * stream has no unsent bytes and does not need a drain. Rejects with
   * StreamClosedError if the stream closes or resets, with AbortedError on
   * `signal`, with the abort reason (e.g. TimeoutError) if the stream was aborted.
   * One write at a time: a concurrent call rejects with InvalidArgumentError.
   * A write cancelled after some of its parts went out aborts the stream (the
   * remote would otherwise see half a frame).
   * libp2p keeps references to what it was given until the bytes are encrypted,
   * which can be after `write` resolves; `onReleased` says when that is over. On
   * a stream without a send ledger libp2p is given copies instead (in
   * {@link COPY_SLICE_BYTES} pieces) and `onReleased` runs as `write` resolves.
   */
  write(parts: readonly Uint8Array[], opts?: WriteOptions): Promise<void>
  /**
   * Incoming data, ending when the remote closes its write side. Throws the
   * failure (StreamClosedError on reset or connection loss, TimeoutError when no
   * bytes moved for idleTimeoutMs, or a write waited that long with none of its
   * bytes taken). Can be iterated once.
   */
  readonly incoming: AsyncIterable<Uint8Array | Uint8ArrayList>
  /** Flushes pending bytes and closes our write side; the remote sees the end of its `incoming`. */
  closeWrite(): Promise<void>
  /**
   * Closes our write side, discards unread incoming data, and resolves once both
   * sides are closed (or the stream was aborted by the idle timer). Never rejects.
   * With `stopInput`, the remote's further data is not taken either (its window
   * shuts, at most one window waits in libp2p until the stream ends): for a peer
   * being cut off, which could otherwise keep us receiving and dropping its bytes.
   */
  close(opts?: { stopInput?: boolean }): Promise<void>
  /** Resets the stream at once; pending and later calls fail with `err` (HaulErrors as is). */
  abort(err: Error): void
  readonly remotePeer: string
  /** The remote end's multiaddr as its connection reports it ('' when not known). */
  readonly remoteAddr: string
  readonly protocol: string
  /** Bytes received but not yet read (our queue plus libp2p's read buffer). */
  readonly incomingBufferedBytes: number
  /** Bytes handed to the stream and not yet passed to the muxer. */
  readonly outgoingBufferedBytes: number
  /**
   * How long the stream has waited to send with none of our bytes taken by the remote (its
   * window stayed shut) or moving toward it (on their way through the connection, the kernel
   * and the link: on a slow link the remote grants window only once a whole window's frame has
   * arrived); 0 when nothing waits. Inbound data does not reset it. Once nothing moved for
   * `deepAfterMs` (default 1 s), the kernel is asked what the remote acknowledged. Sampled:
   * progress since the last call counts as made at this call, so polling every T ms understates
   * a stall by less than T and never overstates it.
   */
  writeStalledMs(deepAfterMs?: number): number
  /** True once the stream is finished (closed both ways, reset or aborted). */
  readonly closed: boolean
  /**
   * Bytes the relay still lets this stream's connection carry, both ways together, when its
   * circuit has a data limit (circuit relay v2); undefined on a connection without one.
   */
  circuitBytesLeft(): number | undefined
}

export interface WrapStreamOptions {
  /**
   * Abort with TimeoutError when no byte was received, read by the consumer,
   * sent, or drained for this long (ms); while a write waits for the remote's
   * window, when none of its bytes were taken for this long, whatever arrives.
   * @default the engine's `timeouts.idleMs` default
   */
  idleTimeoutMs?: number
  /**
   * Received-but-unread bytes at which the stream is paused (resumed at half).
   * Worst case held per stream: this + one yamux window + one data frame.
   * @default 1 MiB
   */
  maxBufferedIncoming?: number
  /**
   * Largest slice of a part handed to the muxer at once; yamux sends each slice
   * as (at most) one data frame. Measured (bench/raw-stream.ts): 64 KiB slices
   * cost ~30% throughput because every frame makes the receiver send a window
   * update (its own Noise message and syscall); 256 KiB to 4 MiB are equal
   * within noise. 1 MiB keeps one stream from holding the connection for long.
   * @default 1 MiB
   */
  writeSliceBytes?: number
  /** Peer id string reported by `remotePeer`. @default '' */
  remotePeer?: string
  /** Multiaddr string reported by `remoteAddr`. @default '' */
  remoteAddr?: string
  /** The stream's connection ledger: lets `write` lend views instead of copies (see send-ledger.ts). */
  sendLedger?: ConnectionSendLedger | undefined
  /** Called once when the stream is finished, however it ended. */
  onClose?: () => void
  /** The connection's remaining circuit bytes (see FrameStream.circuitBytesLeft). */
  circuitBytesLeft?: () => number | undefined
}

/** The options that are callbacks and connection objects rather than settings. */
export type StreamHooks = 'onClose' | 'sendLedger' | 'circuitBytesLeft'

export const defaultWrapStreamOptions: Required<Omit<WrapStreamOptions, StreamHooks>> = {
  idleTimeoutMs: engineDefaults.timeouts.idleMs,
  maxBufferedIncoming: 1 * MiB,
  writeSliceBytes: 1 * MiB,
  remotePeer: '',
  remoteAddr: '',
}

const MAX_TIMER_MS = 2_147_483_647

export function verifyIdleTimeout(ms: number, name = 'idleTimeoutMs'): void {
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_TIMER_MS) {
    throw new ConfigInvalidError(`${name} must be an integer between 1 and ${MAX_TIMER_MS} ms`)
  }
}

export function wrapStream(stream: Stream, opts: WrapStreamOptions = {}): FrameStream {
  const o = {
    idleTimeoutMs: opts.idleTimeoutMs ?? defaultWrapStreamOptions.idleTimeoutMs,
    maxBufferedIncoming: opts.maxBufferedIncoming ?? defaultWrapStreamOptions.maxBufferedIncoming,
    writeSliceBytes: opts.writeSliceBytes ?? defaultWrapStreamOptions.writeSliceBytes,
    remotePeer: opts.remotePeer ?? defaultWrapStreamOptions.remotePeer,
    remoteAddr: opts.remoteAddr ?? defaultWrapStreamOptions.remoteAddr,
  }
  verifyIdleTimeout(o.idleTimeoutMs)
  if (!Number.isSafeInteger(o.maxBufferedIncoming) || o.maxBufferedIncoming <= 0) {
    throw new ConfigInvalidError('maxBufferedIncoming must be a positive integer')
  }
  if (!Number.isSafeInteger(o.writeSliceBytes) || o.writeSliceBytes < KiB) {
    throw new ConfigInvalidError('writeSliceBytes must be an integer >= 1024')
  }
  return new Libp2pFrameStream(stream, o, opts)
}
