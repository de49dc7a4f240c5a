import { StreamState, type YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { StreamMuxer } from '@libp2p/interface'

/**
 * js-yamux 8 answers every data frame it receives with a window update, however little of the
 * window the frame used. Each update is its own Noise message and socket write, and a small
 * transfer's every reply (hello, header, pages, a chunk) cost one: ~9 % of the receiver's main
 * thread at 3,000 16 KiB transfers (CPU profile of bench/concurrency phase 3).
 *
 * Here a stream grants window the way Go's and Rust's yamux do: only once at least half of it
 * is used. The remote then always has at least half a window it may send, so throughput holds
 * while the window is at least twice the link's bandwidth-delay product; memory is unchanged,
 * as the window still bounds what the remote may have in flight. Frames that change the
 * stream's state (SYN, ACK) and the update on resume after a pause go out as before.
 *
 * Not on a connection through a circuit relay (yamux-guard.ts skips it): there every byte
 * crosses two links and the relay, whose own streams start at 256 KiB too, so holding updates
 * back until half the window is used leaves the path idle between grants. Measured with a raw
 * stream between two namespaces through `haul relay` on 100 Mbit/s links: 7.0–7.6 MB/s with
 * coalescing, 11.6 without, 11.9 direct.
 */
export function coalesceWindowUpdates(stream: YamuxStream): void {
  // The window fields are private in yamux's typings, public at run time.
  const window = stream as unknown as ReceiveWindow
  const grant = stream.sendWindowUpdate.bind(stream)
  stream.sendWindowUpdate = () => {
    if (!needsUpdate(window)) return
    grant()
  }
}

/** The parts of a YamuxStream's receive side that decide whether to grant window. */
export interface ReceiveWindow {
  readonly state: StreamState
  /** The window the remote may fill. */
  readonly recvWindow: number
  /** What is left of it: received bytes lower it, an update sets it back to `recvWindow`. */
  readonly recvWindowCapacity: number
}

/** False while an update would only grant less than half of the window back. */
export function needsUpdate(s: ReceiveWindow): boolean {
  const open = s.state === StreamState.Established || s.state === StreamState.SYNSent
  return !open || s.recvWindowCapacity * 2 <= s.recvWindow
}

interface YamuxStreamHooks {
  onCreateStream(...args: unknown[]): YamuxStream
  onRemoteStream(stream: YamuxStream): void
}

/**
 * Installs {@link coalesceWindowUpdates} on every stream of a yamux muxer, outbound and
 * inbound. Both hooks run before the stream sends its first frame (an outbound stream's SYN
 * goes out in a microtask after `onCreateStream` returns).
 */
export function coalesceMuxerWindowUpdates(muxer: StreamMuxer): void {
  const m = muxer as unknown as YamuxStreamHooks
  if (typeof m.onCreateStream !== 'function' || typeof m.onRemoteStream !== 'function') return
  const create = m.onCreateStream.bind(m)
  const remote = m.onRemoteStream.bind(m)
  m.onCreateStream = (...args) => {
    const stream = create(...args)
    coalesceWindowUpdates(stream)
    return stream
  }
  m.onRemoteStream = (stream) => {
    coalesceWindowUpdates(stream)
    remote(stream)
  }
}
