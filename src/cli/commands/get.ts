import { stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { MAX_NAME_BYTES, safeName } from '../../collection/names.ts'
import { cidFromString, cidToString, looksLikeCid } from '../../descriptor/cid.ts'
import type { EngineOptions } from '../../engine/config.ts'
import { AbortedError, DestinationInvalidError, InvalidArgumentError } from '../../errors.ts'
import { ticketAddresses } from '../../net/addresses.ts'
import type { Priority } from '../../resources/fair-queue.ts'
import { journalPath, journalTempPath } from '../../storage/journal.ts'
import { decodeSwarmTicket, joinTickets, type SwarmTicket } from '../../ticket/multi-ticket.ts'
import type { RetryInfo } from '../../transfer/retry.ts'
import { type FetchResult, routeOf, type TransferRoute } from '../../transfer/transfer-types.ts'
import { EXIT } from '../args.ts'
import { formatBytes, formatDuration, formatRate, metricsLine, plural, progressLine } from '../format.ts'
import type { Output } from '../output.ts'
import { ServeReport } from '../serve-report.ts'
import { StopSignals } from '../signals.ts'
import {
  announceResume,
  announceRoute,
  announceWait,
  CheckLines,
  retriesText,
  sinceStart,
  viaText,
} from './get-lines.ts'

export interface GetOptions {
  /**
   * Where to write. A file: that path, or into that folder when it ends in `/` or is one; by
   * default `./<the sender's file name>`. A collection: the folder to recreate it as, or into
   * that folder under its own name when it ends in `/`; by default `./<its name>`. A name the
   * rules of src/collection/names.ts refuse gives `haul-<first 16 hex digits of the content id>`.
   */
  readonly out?: string | undefined
  readonly overwrite: boolean
  readonly waitIfBusy: boolean
  /** This fetch's download limit, bytes per second. */
  readonly maxBytesPerSec?: number | undefined
  readonly priority?: Priority | undefined
  /** Collections: create their symbolic links (each points inside the folder). */
  readonly symlinks?: boolean | undefined
  /** Collections: sync every file before the end (CollectionFetchOptions.sync). */
  readonly sync?: boolean | undefined
  /** Once the file is here, serve it and announce it on the DHT until Ctrl-C (FetchOptions.provide). */
  readonly provide?: boolean | undefined
}

/**
 * `haul get <ticket>...`: one ticket as given (naming one peer or several), or several tickets of
 * the same content joined into one (every peer they name is a provider). `haul get <content id>
 * --bootstrap <addr>`: the providers are found on the DHT.
 */
export async function runGet(
  tickets: readonly string[],
  opts: GetOptions,
  engineOptions: EngineOptions,
  out: Output,
): Promise<number> {
  if (tickets.length === 0) throw new InvalidArgumentError('missing argument: haul get <ticket>')
  refuseSplitTicket(tickets)
  const byId = tickets.length === 1 && looksLikeCid(tickets[0]!)
  if ((byId || opts.provide === true) && engineOptions.dht === undefined) {
    throw new InvalidArgumentError(
      `${byId ? 'a content id alone is looked up' : '--provide announces'} on a DHT: add --bootstrap <address of a peer on it> (or --dht to start one)`,
    )
  }
  const ticketText = tickets.length === 1 ? tickets[0]! : joinTickets([...tickets])
  const ticket: SwarmTicket = byId
    ? { cid: cidFromString(ticketText), providers: [] }
    : decodeSwarmTicket(ticketText)
  const { dest, named, cut } = await destinationOf(ticket, opts.out)
  if (cut !== undefined) {
    out.human(
      `the sender's name for it is ${Buffer.byteLength(cut)} bytes, more than fits beside haul's working files (${WORKING_SUFFIX} adds ${Buffer.byteLength(WORKING_SUFFIX)} to the ${MAX_NAME_BYTES} a name may have): saving it as ${basename(dest)} (-o gives another)`,
    )
  }
  const { Engine } = await import('../../engine/engine.ts')
  const engine = await Engine.create(engineOptions)
  const stop = new StopSignals()
  try {
    const metrics = engine.metricsAddress
    if (metrics !== undefined) {
      out.event({ event: 'metrics', address: metrics })
      out.human(metricsLine(metrics))
    }
    if (ticket.kind === 'collection') {
      const { getFolder } = await import('./get-folder.ts')
      return await getFolder(engine, ticketText, dest, { ...opts, intoExisting: named }, out, stop)
    }
    let route: TransferRoute | undefined
    // What a stop before the header interrupts: the fetch retrying its peers, or waiting.
    let retrying: RetryInfo | undefined
    let waited = false
    const check = new CheckLines(out)
    let lastProgress = 0
    // What it serves while fetching is counted, and shown once the file is whole.
    const served = opts.provide === true ? new ServeReport(out, { quiet: true }) : undefined
    if (served !== undefined) engine.onServe(served.onEvent)
    const handle = engine.fetch(ticketText, dest, {
      overwrite: opts.overwrite,
      waitIfBusy: opts.waitIfBusy,
      ...(opts.maxBytesPerSec === undefined ? {} : { maxBytesPerSec: opts.maxBytesPerSec }),
      ...(opts.priority === undefined ? {} : { priority: opts.priority }),
      signal: stop.signal,
      provide: opts.provide === true,
      onResume: (info, p) => announceResume(out, `${dest}.part`, info, p),
      onWait: (holder) => {
        waited = true
        announceWait(out, dest, holder)
      },
      onProgress: (p) => {
        const now = routeOf(handle.swarmStats())
        if (now !== undefined && now !== route) {
          route = now
          announceRoute(out, now, handle.swarmStats())
        }
        lastProgress = performance.now()
        if (check.show(p)) return
        out.event({ event: 'progress', ...p })
        out.bar(progressLine(p))
      },
      onRetry: (info) => {
        retrying = info
        out.retry(info)
      },
    })
    if (opts.provide === true) announceProviding(out, engine, ticket.cid, 'start')
    // While nothing arrives (a swarm waiting for a provider of the missing chunks) the line is
    // drawn again each second, its rate falling and its ETA gone, rather than frozen at the last.
    const redraw = setInterval(() => {
      if (performance.now() - lastProgress < REDRAW_MS) return
      const p = handle.progress()
      if (p !== undefined && p.check === undefined) out.bar(progressLine(p))
    }, REDRAW_MS).unref()
    const r = await handle.result
      .finally(() => clearInterval(redraw))
      .catch((err: unknown) => {
        if (!(stop.stopped && err instanceof AbortedError)) throw err
        out.done()
        const progress = handle.progress()
        out.event({
          event: 'interrupted',
          path: dest,
          progress,
          ...(progress === undefined && retrying !== undefined
            ? { retrying: { attempt: retrying.attempt, code: retrying.error.code } }
            : {}),
        })
        out.human(
          progress === undefined
            ? `interrupted before the fetch began (${notBegun(retrying, waited, dest)}): nothing was written`
            : `interrupted: ${dest}.part keeps what was verified; run the same command again to resume`,
        )
        return undefined
      })
    if (r === undefined) return EXIT.interrupted
    out.done()
    reportDone(out, r)
    if (served !== undefined) {
      announceProviding(out, engine, ticket.cid, r.path)
      served.speak()
      await stop.wait()
      // The engine's stop reports every session still open (and whether it was cut off) first.
      await engine.stop()
      served.summary()
    }
    return EXIT.done
  } finally {
    // Ctrl-C while the engine stops (the fetch is done) is heard, not the default exit 130.
    await engine.stop()
    stop.dispose()
  }
}

/** How often the progress line is drawn again while nothing arrives. */
const REDRAW_MS = 1000

/**
 * Says how others reach this `get --provide`: as the fetch starts (`'start'`: it serves what it
 * verifies from the first chunk), and once the file is whole (its path): a `providing` event.
 * Every address is listed, the first as the one to pass: a peer may reach only some of them.
 */
function announceProviding(
  out: Output,
  engine: { readonly addresses: readonly string[]; readonly peerId: string },
  cid: Uint8Array,
  path: string | 'start',
): void {
  const reach = ticketAddresses(engine.addresses, engine.peerId).map((a) => `${a}/p2p/${engine.peerId}`)
  const id = cidToString(cid)
  const others = reach.length > 1 ? `\n(this peer's other addresses: ${reach.slice(1).join(', ')})` : ''
  const boot =
    reach[0] === undefined ? '' : `\nothers fetch it with: haul get ${id} --bootstrap ${reach[0]}${others}`
  if (path === 'start') {
    out.event({ event: 'provider', cid: id, peerId: engine.peerId, addresses: reach })
    out.human(`serving what it verifies as it fetches (public, announced on the DHT)${boot}`)
    return
  }
  out.event({ event: 'providing', cid: id, path, public: true, peerId: engine.peerId, addresses: reach })
  out.human(
    `providing ${path} to the DHT's peers (content id ${id}).\npublic (announced on the DHT): anyone who knows its content id can fetch it, with or without the ticket's secret${boot}\nCtrl-C stops.`,
  )
}

/**
 * Refuses words that are not tickets after a ticket: pieces of one pasted unquoted with a space
 * in it (the shell made them words), or a destination without its -o. Each word that does not
 * start a ticket (`haul1…`) continues the one before it; a ticket whose pieces, joined, decode
 * was split by the shell. It is refused, saying so, rather than joined: the shell may have
 * split it at more than a space (a line break runs the rest as a command of its own, a `#`
 * drops it), and a quoted ticket is what works everywhere else it is pasted.
 */
function refuseSplitTicket(words: readonly string[]): void {
  const starts = (w: string): boolean => /^haul1/i.test(w)
  if (words.length < 2 || !starts(words[0]!) || words.every(starts)) return
  const groups: string[][] = []
  for (const w of words) {
    if (starts(w) || groups.length === 0) groups.push([w])
    else groups.at(-1)!.push(w)
  }
  for (const group of groups) {
    if (group.length === 1) continue
    if (decodes(group.join(''))) {
      throw new InvalidArgumentError(
        `the ticket was split into ${group.length} words by the shell (it holds a space or a line break): put it in quotes, haul get "haul1…"`,
      )
    }
    const first = group[1]!
    const shown = first.length > 24 ? `${first.slice(0, 24)}…` : first
    throw new InvalidArgumentError(
      `haul get takes tickets (haul1…), and "${shown}" is not one, nor the rest of the ticket before it: say where to write with -o <path>; a ticket pasted with a space or a line break in it goes in quotes`,
    )
  }
}

function decodes(text: string): boolean {
  try {
    decodeSwarmTicket(text)
    return true
  } catch {
    return false
  }
}

/** Where a fetch of `ticket` writes (see GetOptions.out). */
async function destinationOf(
  ticket: SwarmTicket,
  out: string | undefined,
): Promise<{ dest: string; named: boolean; cut?: string }> {
  const name = safeName(ticket.name) ?? `haul-${Buffer.from(ticket.cid).toString('hex').slice(0, 16)}`
  // A trailing slash says "into this folder, under its own name", for a folder as for a file;
  // without one, a collection's -o is the folder to recreate it as (a resume names it so).
  const into =
    out === undefined ||
    out.endsWith('/') ||
    (ticket.kind !== 'collection' && (await stat(out).catch(() => undefined))?.isDirectory() === true)
  if (!into) return { dest: out, named: true }
  // The sender chose this name: not one that hides (a `.ssh`, a `.bashrc`), which -o can still give.
  if (name.startsWith('.')) {
    throw new DestinationInvalidError(
      `the ${ticket.kind === 'collection' ? 'folder' : 'file'} is named ${JSON.stringify(name)} by its sender, a hidden name haul does not take from a ticket: give it one with -o <path> (-o ${name} keeps that name)`,
    )
  }
  const fits = ticket.kind === 'collection' ? name : fitName(name)
  return {
    dest: out === undefined ? fits : join(out, fits),
    named: false,
    ...(fits === name ? {} : { cut: name }),
  }
}

/** What the longest name haul gives a working file beside a fetched file adds to it: the journal's while it is built. */
const WORKING_SUFFIX = journalTempPath(journalPath(''))

/**
 * A file name from a ticket cut to leave room for WORKING_SUFFIX: the end of its stem goes (at a
 * character's edge), its extension stays. A name that fits is returned as it is.
 */
function fitName(name: string): string {
  const room = MAX_NAME_BYTES - Buffer.byteLength(WORKING_SUFFIX)
  if (Buffer.byteLength(name) <= room) return name
  const dot = name.lastIndexOf('.')
  const ext = dot > 0 && Buffer.byteLength(name.slice(dot)) <= 32 ? name.slice(dot) : ''
  let stem = ''
  let bytes = Buffer.byteLength(ext)
  for (const c of name.slice(0, name.length - ext.length)) {
    bytes += Buffer.byteLength(c)
    if (bytes > room) break
    stem += c
  }
  return `${stem}${ext}`
}

/** What a fetch stopped before it had the header was doing: retrying its peers, or waiting. */
function notBegun(retrying: RetryInfo | undefined, waited: boolean, dest: string): string {
  if (retrying !== undefined) {
    const n = retrying.attempt
    return `it was retrying the peer: ${n} failed attempt${n === 1 ? '' : 's'} in a row, the last [${retrying.error.code}]`
  }
  if (waited) return `it was waiting for the fetch writing ${dest}`
  return 'it was waiting for its turn or connecting to the peer'
}

function reportDone(out: Output, r: FetchResult): void {
  const fetched = r.bytes - r.resume.bytesKept
  out.event({
    event: 'done',
    path: r.path,
    bytes: r.bytes,
    fetchedBytes: fetched,
    chunks: r.chunks,
    seconds: r.seconds,
    rate: r.rate,
    resume: r.resume,
    retries: r.retries,
    ...(routeOf(r.swarm) === undefined ? {} : { route: routeOf(r.swarm) }),
  })
  if (r.resume.mode === 'present') {
    out.human(
      `${r.path} already holds this content (${formatBytes(r.bytes)}, verified by its content id): nothing to fetch`,
    )
    return
  }
  // A clean stop's journal's figures were said as the fetch started (announceResume); those of a
  // re-hash or of a check after a crash are known now.
  const checked = r.resume.mode !== 'journal' || r.resume.reason === 'unclean-stop'
  if (r.resume.chunksKept > 0 && r.resume.reason === 'destination') {
    out.human(
      `kept ${plural(r.resume.chunksKept, 'chunk')} (${formatBytes(r.resume.bytesKept)}) of the file that was here, which still match`,
    )
  } else if (r.resume.chunksKept > 0 && checked) {
    out.human(
      `resumed (${r.resume.mode}): kept ${plural(r.resume.chunksKept, 'chunk')} (${formatBytes(r.resume.bytesKept)}) ${r.resume.reason === 'other-content' ? 'that match this content' : 'from an earlier run'}`,
    )
  }
  const moved = r.resume.bytesKept > 0 ? `; fetched ${formatBytes(fetched)} in` : ','
  const via = viaText(r.swarm)
  out.human(
    `received ${r.path}: ${formatBytes(r.bytes)} in ${plural(r.chunks, 'chunk')}, every chunk verified${moved} ${formatDuration(r.seconds)} at ${formatRate(r.rate)}${sinceStart(r.seconds)}${retriesText(r.retries)}${via}`,
  )
}
