import { basename } from 'node:path'
import { TokenBucket } from '../resources/rate-limit.ts'
import type { ServeEvent } from '../serve/serve-events.ts'
import { ProgressMeter } from '../transfer/progress.ts'
import { escapeControls } from '../util/safe-text.ts'
import { formatBytes, formatDuration, formatRate } from './format.ts'
import type { Output } from './output.ts'

/** One peer fetching one content over one session, as the sender sees it. */
interface Transfer {
  /** Numbered 1, 2, … in this run: a session fetching two contents (a folder's file list, then its files) makes two. */
  readonly id: number
  readonly session: number
  readonly peerId: string
  readonly cid: string
  readonly path: string
  readonly totalBytes: number
  readonly partial: boolean
  /** Served bytes and their recent rate. */
  readonly meter: ProgressMeter
  readonly startedAt: number
  lastChunkAt: number
}

/** Distinct peers counted for the summary; past this the count stops growing (shown as "N+"). */
const MAX_PEERS_COUNTED = 100_000
/** Transfers named on the live line; the rest are counted. */
const BAR_TRANSFERS = 2
/**
 * Lines about one peer's transfers shown at once; past them one a second, the rest counted and
 * said in one line: a peer opening its hundreds of streams at once would fill the terminal.
 */
const PEER_LINE_BURST = 10

/** One peer's transfer lines: a bucket of a line a second, PEER_LINE_BURST deep, and those not shown. */
interface PeerLines {
  readonly bucket: TokenBucket
  hidden: number
}

/** `12D3…FCeFtiM`: peer ids all start alike, so the end is what tells them apart. */
export function shortPeer(id: string): string {
  return id.length > 14 ? `${id.slice(0, 4)}…${id.slice(-7)}` : id
}

/** The address without its `/p2p/<peer id>` tail, which the line already names. */
function shortAddr(addr: string): string {
  const at = addr.indexOf('/p2p/')
  return at > 0 ? addr.slice(0, at) : addr || 'an unknown address'
}

/** What a report writes to. */
type ReportOutput = Pick<Output, 'event' | 'human' | 'bar' | 'done'>

/** Where a quiet report writes: nowhere. */
const SILENT: ReportOutput = { event() {}, human() {}, bar() {}, done() {} }

/**
 * What `haul send`, `haul seed` and `haul get --provide` show while serving, built from the engine's serve events
 * (Engine.onServe): a line per peer that connects, a line per transfer that starts and ends, a
 * live line of the transfers running with bytes served and rate, and the summary on exit. With
 * `--json` the same as events: peer-connected, transfer-started, serving (at most two a second
 * per transfer, as the engine reports), transfer-ended, stopped.
 *
 * Everything it holds is per live session (the engine bounds sessions) except the set of peers
 * seen, capped at MAX_PEERS_COUNTED.
 */
export class ServeReport {
  readonly #loud: Output
  #out: ReportOutput
  /** Open sessions per peer: a peer is announced when its first one opens. */
  readonly #peerSessions = new Map<string, number>()
  readonly #peersSeen = new Set<string>()
  /** The address each peer was last said to connect from (at most MAX_PEERS_COUNTED peers). */
  readonly #saidFrom = new Map<string, string>()
  #peersCapped = false
  /** The transfer running on each session. */
  readonly #transfers = new Map<number, Transfer>()
  /** Per peer with a session open: its transfer lines' budget. */
  readonly #peerLines = new Map<string, PeerLines>()
  #bytes = 0
  #started = 0
  /** Transfers that ended with requests unanswered because this side stopped. */
  #cutByStop = 0
  /** Transfers that ended with requests unanswered because the peer or the network went. */
  #cutByPeer = 0

  /**
   * `quiet`: counts what is served for the summary, and shows nothing until `speak()` (a
   * `get --provide` serves while its own fetch owns the terminal).
   */
  constructor(out: Output, opts: { quiet?: boolean } = {}) {
    this.#loud = out
    this.#out = opts.quiet === true ? SILENT : out
  }

  /** Shows what is served from now on (a quiet report). */
  speak(): void {
    this.#out = this.#loud
  }

  readonly onEvent = (e: ServeEvent): void => {
    if (e.type === 'session-opened') this.#opened(e.peerId, e.remoteAddr)
    else if (e.type === 'content-requested') this.#requested(e)
    else if (e.type === 'chunks-served') this.#served(e)
    else if (e.type === 'content-withdrawn') this.#withdrawn(e)
    else if (e.type === 'relay-slot') this.#relaySlot(e)
    else {
      this.#end(e.session, e)
      this.#closed(e.peerId)
    }
  }

  /** The content stopped being served (its file changed): said once, as an error line. */
  #withdrawn(e: Extract<ServeEvent, { type: 'content-withdrawn' }>): void {
    this.#out.event({ event: 'withdrawn', cid: e.cid, path: e.path, code: e.code, message: e.message })
    this.#out.done()
    this.#out.human(`error [${e.code}]: ${e.message} (no longer served)`)
  }

  /** The slot on a relay was lost, could not be reserved again yet, or is held again. */
  #relaySlot(e: Extract<ServeEvent, { type: 'relay-slot' }>): void {
    const { type: _, ...fields } = e
    this.#out.event({ event: 'relay', ...fields })
    if (e.state === 'lost') {
      this.#line(
        `lost the slot on relay ${e.relay}: reserving it again (receivers that need the relay cannot reach this peer meanwhile)`,
      )
    } else if (e.state === 'retrying') {
      this.#line(`relay ${e.relay} not reached (${e.reason}): trying again in ${Math.round(e.inMs / 1000)} s`)
    } else this.#line(`slot on relay ${e.relay} reserved again: reachable through it`)
  }

  /** Transfers running now (their session open and some bytes asked for). */
  get running(): number {
    return this.#transfers.size
  }

  /** The last words on exit: what was served, to how many, and what the stop cut off. */
  summary(): void {
    this.speak()
    for (const peerId of this.#peerLines.keys()) this.#hiddenLine(peerId)
    const peers = this.#peersSeen.size
    this.#out.event({
      event: 'stopped',
      bytesServed: this.#bytes,
      peers,
      transfers: this.#started,
      cutOff: this.#cutByStop,
      cutOffByPeer: this.#cutByPeer,
    })
    const cut =
      this.#cutByStop === 0
        ? 'no transfer was in progress'
        : `${plural(this.#cutByStop, 'transfer')} in progress ${this.#cutByStop === 1 ? 'was' : 'were'} cut off`
    const byPeer = this.#cutByPeer === 0 ? '' : ` (${this.#cutByPeer} cut off by their peer)`
    this.#out.done()
    const seen = `${plural(peers, 'peer')}${this.#peersCapped ? '+' : ''}`
    this.#out.human(
      this.#started === 0
        ? `stopped: nothing was asked for${peers > 0 ? ` (${seen} connected)` : ''}`
        : `stopped: served ${formatBytes(this.#bytes)} to ${seen} in ${plural(this.#started, 'transfer')}${byPeer}; ${cut}`,
    )
  }

  #requested(e: Extract<ServeEvent, { type: 'content-requested' }>): void {
    this.#end(e.session, undefined)
    const now = performance.now()
    this.#started++
    const id = this.#started
    this.#transfers.set(e.session, {
      id,
      session: e.session,
      peerId: e.peerId,
      cid: e.cid,
      path: e.path,
      totalBytes: e.totalBytes,
      partial: e.partial,
      meter: new ProgressMeter(e.totalBytes, e.totalChunks),
      startedAt: now,
      lastChunkAt: now,
    })
    this.#out.event({
      event: 'transfer-started',
      transfer: id,
      session: e.session,
      peerId: e.peerId,
      cid: e.cid,
      path: e.path,
      totalBytes: e.totalBytes,
      partial: e.partial,
    })
    this.#peerLine(
      e.peerId,
      `${shortPeer(e.peerId)} fetching ${basename(e.path)} (${formatBytes(e.totalBytes)}${e.partial ? ', from the partial copy' : ''})`,
    )
  }

  #served(e: Extract<ServeEvent, { type: 'chunks-served' }>): void {
    this.#bytes += e.bytes
    const t = this.#transfers.get(e.session)
    if (t === undefined) return
    t.meter.add(e.bytes, e.chunks)
    t.lastChunkAt = performance.now()
    this.#out.event({
      event: 'serving',
      transfer: t.id,
      peerId: t.peerId,
      cid: t.cid,
      bytesServed: t.meter.bytesDone,
      totalBytes: t.totalBytes,
      rate: t.meter.snapshot().rate,
    })
    this.#out.bar(this.#barLine())
  }

  #opened(peerId: string, remoteAddr: string): void {
    const open = this.#peerSessions.get(peerId) ?? 0
    this.#peerSessions.set(peerId, open + 1)
    if (this.#peersSeen.size < MAX_PEERS_COUNTED) this.#peersSeen.add(peerId)
    else if (!this.#peersSeen.has(peerId)) this.#peersCapped = true
    if (open > 0) return
    this.#out.event({ event: 'peer-connected', peerId, address: remoteAddr })
    // Said once for a peer and its address: one that ends a session and opens the next (a
    // lookup, then the fetch) over the same connection has not connected again.
    if (this.#saidFrom.get(peerId) === remoteAddr) return
    if (this.#saidFrom.size < MAX_PEERS_COUNTED || this.#saidFrom.has(peerId))
      this.#saidFrom.set(peerId, remoteAddr)
    this.#line(`peer ${shortPeer(peerId)} connected from ${shortAddr(remoteAddr)}`)
  }

  #closed(peerId: string): void {
    const open = (this.#peerSessions.get(peerId) ?? 1) - 1
    if (open > 0) this.#peerSessions.set(peerId, open)
    else {
      this.#peerSessions.delete(peerId)
      this.#hiddenLine(peerId)
      this.#peerLines.delete(peerId)
    }
  }

  /** A line about one of `peerId`'s transfers, within its budget (PEER_LINE_BURST). */
  #peerLine(peerId: string, text: string): void {
    let b = this.#peerLines.get(peerId)
    if (b === undefined) {
      b = { bucket: new TokenBucket({ rate: 1, burst: PEER_LINE_BURST }), hidden: 0 }
      this.#peerLines.set(peerId, b)
    }
    if (!b.bucket.tryTake(1)) {
      b.hidden++
      return
    }
    this.#hiddenLine(peerId)
    this.#line(text)
  }

  /** Says how many of `peerId`'s transfer lines were not shown, if any. */
  #hiddenLine(peerId: string): void {
    const b = this.#peerLines.get(peerId)
    if (b === undefined || b.hidden === 0) return
    this.#line(
      `(${plural(b.hidden, 'more line')} about ${shortPeer(peerId)}'s transfers not shown: it ran many at once)`,
    )
    b.hidden = 0
  }

  /** Ends the session's transfer: its session ended (`e`), or it asked for another content. */
  #end(session: number, e: Extract<ServeEvent, { type: 'session-ended' }> | undefined): void {
    const t = this.#transfers.get(session)
    if (t === undefined) return
    this.#transfers.delete(session)
    const served = t.meter.bytesDone
    const seconds = (t.lastChunkAt - t.startedAt) / 1000
    const rate = seconds > 0 ? served / seconds : 0
    // Cut off: it ended with requests unanswered, or this side stopped before all was served (a
    // receiver pacing itself, --max-rate, is between requests most of the time). An embedded
    // receiver's idle session, kept after a multi-peer fetch took the rest from others, counts
    // so too. Otherwise the peer stopped asking: with the whole content served, or its part of it
    // (a multi-peer fetch), or it quit between requests.
    const stoppedShort = e?.reason === 'stopped' && served < t.totalBytes
    const outcome =
      e?.busy === true || stoppedShort ? 'cut-off' : served >= t.totalBytes ? 'complete' : 'partial'
    if (outcome === 'cut-off' && e?.reason === 'stopped') this.#cutByStop++
    else if (outcome === 'cut-off') this.#cutByPeer++
    this.#out.event({
      event: 'transfer-ended',
      transfer: t.id,
      session,
      peerId: t.peerId,
      cid: t.cid,
      path: t.path,
      bytesServed: served,
      totalBytes: t.totalBytes,
      seconds,
      rate,
      outcome,
      ...(e === undefined ? {} : { reason: e.reason }),
      ...(e?.code === undefined ? {} : { code: e.code, message: e.message }),
    })
    const peer = shortPeer(t.peerId)
    const name = basename(t.path)
    const amount = `${formatBytes(served)} of ${formatBytes(t.totalBytes)}`
    const pace = `in ${formatDuration(seconds)} at ${formatRate(rate)}`
    if (outcome === 'complete') this.#peerLine(t.peerId, `${peer} finished ${name}: served ${amount} ${pace}`)
    else if (outcome === 'partial')
      this.#peerLine(t.peerId, `${peer} stopped fetching ${name}: served ${amount} ${pace}`)
    else {
      const why =
        e?.reason === 'stopped'
          ? 'by the stop'
          : `[${e?.code ?? 'STREAM_CLOSED'}]${e?.message === undefined ? '' : ` ${escapeControls(e.message)}`}`
      this.#peerLine(t.peerId, `${peer} cut off ${name} after ${amount} ${why}`)
    }
  }

  #barLine(): string {
    const active = [...this.#transfers.values()].filter((t) => t.meter.bytesDone > 0)
    const shown = active.slice(0, BAR_TRANSFERS).map((t) => {
      const s = t.meter.snapshot()
      return `↑ ${shortPeer(t.peerId)} ${basename(t.path)} ${formatBytes(s.bytesDone)} / ${formatBytes(t.totalBytes)} ${formatRate(s.rate)}`
    })
    const more = active.length - shown.length
    return `${shown.join('  |  ')}${more > 0 ? `  (+${more} more)` : ''}  · ${formatBytes(this.#bytes)} served`
  }

  /** A line of its own, after the live line. */
  #line(text: string): void {
    this.#out.done()
    this.#out.human(text)
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
