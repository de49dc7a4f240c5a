import type { MessageStream, StreamMessageEvent, StreamMuxer, StreamMuxerFactory } from '@libp2p/interface'
import { serviceCapabilities } from '@libp2p/interface'
import { ProtocolViolationError } from '../../errors.ts'
import { isThroughRelay } from './noise-stream.ts'
import type { SendLedgers } from './send-ledger.ts'
import { coalesceMuxerWindowUpdates } from './window-updates.ts'

/**
 * js-yamux 8 buffers a whole data frame before it compares the frame's length
 * with the receive window (decode.ts `readFrame`), and the length field is 32
 * bits: a hostile peer can announce a 4 GiB frame and make us hold everything it
 * sends. This guard follows the same byte stream with a 12-byte header parser
 * and cuts the connection as soon as a header announces a data frame larger than
 * any window we could ever have granted. It never copies payload bytes.
 */
const HEADER_LENGTH = 12
const TYPE_DATA = 0
const YAMUX_VERSION = 0

export class YamuxFrameGuard {
  readonly #maxDataFrame: number
  readonly #header = new Uint8Array(HEADER_LENGTH)
  #fill = 0
  #skip = 0
  #violation: ProtocolViolationError | undefined

  constructor(maxDataFrame: number) {
    this.#maxDataFrame = maxDataFrame
  }

  /** The first violation seen, if any; once set the guard ignores further input. */
  get violation(): ProtocolViolationError | undefined {
    return this.#violation
  }

  /** Feeds received bytes; returns the violation as soon as one is seen. */
  push(data: Uint8Array | Iterable<Uint8Array>): ProtocolViolationError | undefined {
    if (this.#violation !== undefined) return this.#violation
    if (data instanceof Uint8Array) this.#scan(data)
    else for (const buf of data) if (this.#scan(buf)) break
    return this.#violation
  }

  #scan(buf: Uint8Array): boolean {
    let i = 0
    while (i < buf.byteLength) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, buf.byteLength - i)
        this.#skip -= n
        i += n
        continue
      }
      const n = Math.min(HEADER_LENGTH - this.#fill, buf.byteLength - i)
      this.#header.set(buf.subarray(i, i + n), this.#fill)
      this.#fill += n
      i += n
      if (this.#fill < HEADER_LENGTH) return false
      this.#fill = 0
      const h = this.#header
      if (h[0] !== YAMUX_VERSION) {
        this.#violation = new ProtocolViolationError(`yamux frame with unknown version ${h[0]}`)
        return true
      }
      if (h[1] === TYPE_DATA) {
        const length = ((h[8]! << 24) >>> 0) + (h[9]! << 16) + (h[10]! << 8) + h[11]!
        if (length > this.#maxDataFrame) {
          this.#violation = new ProtocolViolationError(
            `peer sent a ${length}-byte yamux data frame, larger than the ${this.#maxDataFrame}-byte window we allow`,
          )
          return true
        }
        this.#skip = length
      }
    }
    return false
  }
}

/** Wraps a muxer factory so every connection it multiplexes is guarded, grants window in halves (window-updates.ts) and, with `ledgers`, has its sends counted. */
export function guardedMuxerFactory(
  inner: StreamMuxerFactory,
  maxDataFrame: number,
  ledgers?: SendLedgers,
): StreamMuxerFactory {
  const factory: StreamMuxerFactory & { [serviceCapabilities]: string[] } = {
    protocol: inner.protocol,
    // libp2p checks service capabilities at start; keep the muxer's.
    [serviceCapabilities]: (inner as { [serviceCapabilities]?: string[] })[serviceCapabilities] ?? [],
    createStreamMuxer(maConn: MessageStream): StreamMuxer {
      const guard = new YamuxFrameGuard(maxDataFrame)
      // Registered before the muxer's own listener, and in the same tick, so both
      // see exactly the same bytes (buffered data is dispatched to all listeners).
      const onMessage = (evt: StreamMessageEvent): void => {
        const violation = guard.push(evt.data)
        if (violation !== undefined) {
          maConn.removeEventListener('message', onMessage)
          maConn.abort(violation)
        }
      }
      maConn.addEventListener('message', onMessage)
      const ledger = ledgers?.track(maConn)
      const muxer = inner.createStreamMuxer(maConn)
      // Before the muxer's first stream exists (see window-updates.ts), except through a relay.
      if (!isThroughRelay(maConn)) coalesceMuxerWindowUpdates(muxer)
      if (ledger !== undefined) ledger.muxer = muxer
      return muxer
    },
  }
  return factory
}
