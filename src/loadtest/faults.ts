import { ConfigInvalidError } from '../errors.ts'
import { decodeSwarmTicket } from '../ticket/multi-ticket.ts'
import { mulberry32 } from '../util/random.ts'
import { FaultProxy, proxyTicket, randomInt, tcpPortOf } from './fault-proxy.ts'

/**
 * Faults the harness injects itself: a `FaultProxy` (a TCP proxy in the harness
 * process) in front of each sending process, which receivers dial instead of
 * the sender. Every connection between the engines goes through exactly one
 * of them (whoever dialed it), so the report can say how many bytes crossed
 * the links beyond what was delivered (re-sent).
 */
export interface LoadTestFaultSpec {
  /**
   * Each connection to a sender is cut after a time drawn uniformly from
   * [min, max] ms (its reconnection gets a new draw). @default none
   */
  cutEveryMs?: readonly [number, number]
  /** What a cut looks like to the peers: a TCP reset or a FIN mid-stream. @default 'reset' */
  cutMode?: 'reset' | 'close'
  /** Every this many ms, all links stop forwarding for `stallMs` (sockets stay open). @default none */
  stallEveryMs?: number
  /** How long a stall lasts; longer than the engines' `timeouts.idleMs` makes them reconnect. @default 2_000 */
  stallMs?: number
  /** Link rate per sender and direction, bytes per second. @default unlimited */
  rateBytesPerSec?: number
}

/** One fault the built-in faults injected. */
export interface FaultEvent {
  /** Seconds since the run started (its first transfer). */
  t: number
  kind: 'cut' | 'stall'
  /** Cuts: the sender whose link was cut (its process index). Stalls hit every link. */
  sender?: number
  /** Stalls: how long, ms. */
  ms?: number
}

/** Fault events kept for the report; more are counted, not kept (a long run cuts many times a second). */
export const MAX_FAULT_EVENTS = 10_000

export interface LoadTestFaults {
  /** Called once per published file with its sender's ticket; returns the ticket receivers should use. */
  wrapTicket: (ticket: string, sender: number) => string | Promise<string>
  /**
   * Bytes forwarded so far in BOTH directions of every proxy (payload + framing + encryption):
   * engines keep one connection per pair, so a connection B dialed through A's proxy also carries
   * A's downloads from B, in that proxy's up direction (`FaultProxyStats.bytesUp`). Every
   * connection of the run must go through exactly one proxy for the figure to be the whole wire.
   */
  wireBytes?: () => number
}

/** The built-in faults, running. */
export interface RunningFaults extends LoadTestFaults {
  /** Starts the stall schedule; event times count from `origin` (a `performance.now()`). */
  begin(origin: number): void
  /** Connections cut so far, all links. */
  cuts(): number
  stalls(): number
  /** The first `MAX_FAULT_EVENTS` events in time order, and how many more there were. */
  events(): { events: FaultEvent[]; eventsDropped: number }
  close(): Promise<void>
}

export function verifyFaultSpec(s: LoadTestFaultSpec): void {
  const bad = (what: string): never => {
    throw new ConfigInvalidError(`faults.${what}`)
  }
  if (s.cutEveryMs !== undefined) {
    const [min, max] = s.cutEveryMs
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 1 || max < min)
      bad(
        `cutEveryMs must be [min, max] whole milliseconds with 1 <= min <= max, got ${JSON.stringify(s.cutEveryMs)}`,
      )
  }
  if (s.cutMode !== undefined && s.cutMode !== 'reset' && s.cutMode !== 'close')
    bad(`cutMode must be reset or close, got ${s.cutMode}`)
  for (const k of ['stallEveryMs', 'stallMs', 'rateBytesPerSec'] as const) {
    const v = s[k]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1))
      bad(`${k} must be a whole number >= 1, got ${v}`)
  }
}

/**
 * Starts nothing yet: a proxy is made for each sender the first time one of its tickets is
 * wrapped, and stalls start with `begin()`.
 */
export function startFaults(spec: LoadTestFaultSpec, seed: number): RunningFaults {
  verifyFaultSpec(spec)
  const random = mulberry32(seed ^ 0x5eed)
  const proxies = new Map<number, Promise<FaultProxy>>()
  const events: FaultEvent[] = []
  let dropped = 0
  let origin = performance.now()
  const log = (e: Omit<FaultEvent, 't'>): void => {
    if (events.length < MAX_FAULT_EVENTS) events.push({ t: (performance.now() - origin) / 1000, ...e })
    else dropped++
  }
  let stalls = 0
  let stallTimer: NodeJS.Timeout | undefined
  const stallMs = spec.stallMs ?? 2_000
  const cut = spec.cutEveryMs
  const proxyFor = (ticket: string, sender: number): Promise<FaultProxy> => {
    let p = proxies.get(sender)
    if (p === undefined) {
      p = FaultProxy.start({
        target: { port: tcpPortOf(decodeSwarmTicket(ticket).providers[0]!.addrs) },
        ...(spec.cutMode === undefined ? {} : { cutMode: spec.cutMode }),
        ...(spec.rateBytesPerSec === undefined ? {} : { rateBytesPerSec: spec.rateBytesPerSec }),
        ...(cut === undefined ? {} : { plan: () => ({ cutAfterMs: randomInt(cut[0], cut[1], random) }) }),
        onCut: () => log({ kind: 'cut', sender }),
      })
      proxies.set(sender, p)
    }
    return p
  }
  const settled: FaultProxy[] = []
  return {
    async wrapTicket(ticket, sender) {
      const p = await proxyFor(ticket, sender)
      if (!settled.includes(p)) settled.push(p)
      return proxyTicket(ticket, p)
    },
    wireBytes: () => settled.reduce((s, p) => s + p.stats.bytesDown + p.stats.bytesUp, 0),
    begin(at) {
      origin = at
      if (spec.stallEveryMs === undefined || stallTimer !== undefined) return
      stallTimer = setInterval(() => {
        stalls++
        log({ kind: 'stall', ms: stallMs })
        for (const p of proxies.values()) void p.then((x) => x.stall(stallMs))
      }, spec.stallEveryMs)
      stallTimer.unref()
    },
    cuts: () => settled.reduce((s, p) => s + p.stats.cuts, 0),
    stalls: () => stalls,
    events: () => ({ events: [...events], eventsDropped: dropped }),
    async close() {
      clearInterval(stallTimer)
      await Promise.all([...proxies.values()].map(async (p) => (await p).close()))
    },
  }
}
