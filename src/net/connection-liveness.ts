import { TimeoutError } from '../errors.ts'
import { type ConnectionSendLedger, FLIGHT_PROGRESS_BYTES, type SendLedgers } from './tuning/send-ledger.ts'

/** Pings go out this many times per `deadConnectionMs`, so a healthy idle connection is never that quiet. */
export const PINGS_PER_DEAD_PERIOD = 3
/** The rule looks at every connection this often (a quarter of the bound, at most). */
const MAX_POLL_MS = 1_000
const MIN_POLL_MS = 25

interface Seen {
  bytesRead: number
  delivered: number
  at: number
}

/**
 * Closes the connections whose peer is gone: one that has read no byte and got less than
 * FLIGHT_PROGRESS_BYTES of its own into the network for `deadConnectionMs` is aborted with
 * TimeoutError (its streams fail with it and are retried elsewhere or later). Our own pings do
 * not count: a frozen peer's kernel still takes them.
 *
 * libp2p's connection monitor pings every connection; its own rule, abort when a ping is not
 * answered within an adaptive timeout of at least 10 s, cuts healthy connections on slow links:
 * there a ping waits behind the data queued on the connection (a yamux frame is a whole window:
 * 1 MiB takes 33 s at 256 kbit/s). Its pings still go out, `PINGS_PER_DEAD_PERIOD` times per
 * bound, and keep a healthy idle connection from going quiet; a dead or frozen peer answers
 * none and takes none of our bytes. Only connections with a TCP wire below them are judged: a
 * relayed one ends with its relay's connections, which are.
 */
export class ConnectionLiveness {
  readonly #ledgers: SendLedgers
  readonly #deadMs: number
  readonly #seen = new WeakMap<ConnectionSendLedger, Seen>()
  readonly #timer: NodeJS.Timeout

  constructor(ledgers: SendLedgers, deadMs: number) {
    this.#ledgers = ledgers
    this.#deadMs = deadMs
    const poll = Math.max(MIN_POLL_MS, Math.min(MAX_POLL_MS, Math.floor(deadMs / 4)))
    this.#timer = setInterval(this.#check, poll)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  readonly #check = (): void => {
    const now = performance.now()
    for (const ledger of this.#ledgers.open()) {
      const wire = ledger.wire
      if (wire === undefined) continue
      const bytesRead = wire.bytesRead
      const delivered = ledger.delivered
      const seen = this.#seen.get(ledger)
      if (
        seen === undefined ||
        seen.bytesRead !== bytesRead ||
        delivered - seen.delivered >= FLIGHT_PROGRESS_BYTES
      ) {
        this.#seen.set(ledger, { bytesRead, delivered, at: now })
        continue
      }
      if (now - seen.at < this.#deadMs) continue
      ledger.abort(
        new TimeoutError(
          `the peer sent nothing and took none of our bytes for ${this.#deadMs} ms: connection closed (it is gone, or the link is down)`,
        ),
      )
    }
  }
}
