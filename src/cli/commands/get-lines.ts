/**
 * What `haul get` says as a fetch starts (a file's, or a folder's pack): whom it waits for, what it
 * resumes from an earlier run, how it checks that, and how it reaches its peers.
 */
import { resolve } from 'node:path'
import type { ResumeInfo } from '../../fetch/resume.ts'
import type { CheckProgress, TransferProgress } from '../../transfer/progress.ts'
import { routeOf, type SwarmStats, type TransferRoute } from '../../transfer/transfer-types.ts'
import { checkLine, formatBytes, formatDuration, formatRate, plural } from '../format.ts'
import type { Output } from '../output.ts'

/**
 * Says, as a fetch starts, what an earlier run left in its part file (`part`: `<dest>.part`, or a
 * folder's pack in its staging folder) and what becomes of it.
 */
export function announceResume(out: Output, part: string, info: ResumeInfo, p: TransferProgress): void {
  if (info.mode === 'fresh' || info.mode === 'present') return
  out.event({
    event: 'resuming',
    mode: info.mode,
    ...(info.reason === undefined ? {} : { reason: info.reason }),
    chunksKept: info.chunksKept,
    bytesKept: info.bytesKept,
    ...(info.chunksChecked === undefined ? {} : { chunksChecked: info.chunksChecked }),
    totalBytes: p.totalBytes,
    totalChunks: p.totalChunks,
  })
  out.done()
  if (info.mode === 'journal' && info.reason === 'unclean-stop') {
    out.human(
      `resuming: ${formatBytes(info.bytesKept)} of ${formatBytes(p.totalBytes)} already here (${info.chunksKept} of ${p.totalChunks} chunks) from a run that did not stop cleanly: checking them against the content id before fetching the rest${info.chunksChecked === undefined ? '' : ` (${info.chunksChecked} of them were checked by an earlier run, cut short)`}`,
    )
  } else if (info.mode === 'journal') {
    out.human(
      `resuming: ${formatBytes(info.bytesKept)} of ${formatBytes(p.totalBytes)} already here, verified (${info.chunksKept} of ${p.totalChunks} chunks)`,
    )
  } else if (info.mode === 'rehash' && info.reason === 'part-modified') {
    out.human(
      `resuming: ${part} was changed after its journal was last written: checking the chunks the journal kept against the content id, keeping what verifies`,
    )
  } else if (info.mode === 'rehash' && info.reason === 'other-content') {
    out.human(
      `resuming: ${part} held chunks of another content (an earlier fetch's, given up for this one): checking them against this content id, keeping those that match`,
    )
  } else if (info.mode === 'rehash' && info.reason === 'destination') {
    out.human(
      `${part.slice(0, -'.part'.length)} holds other data (--force): checking its chunks against the content id, keeping every chunk that still matches`,
    )
  } else if (info.mode === 'rehash' && info.reason === 'local-files') {
    out.human(
      'the folder is here already: checking its files against the new list, keeping every chunk that still matches',
    )
  } else if (info.mode === 'rehash' && info.reason === 'part-size') {
    out.human(
      `resuming: ${part} has another size and no journal: checking its chunks against the content id, keeping what verifies`,
    )
  } else if (info.mode === 'rehash') {
    out.human(
      `resuming: ${part} has no usable journal (${info.reason ?? 'missing'}): checking its chunks against the content id, keeping what verifies`,
    )
  } else {
    out.human(`starting over: ${part} held ${RESTART_REASON[info.reason ?? 'other-content'] ?? info.reason}`)
  }
}

/**
 * Shows the check of what an earlier run left (TransferProgress.check) while it runs: `checking`
 * events and a progress line; once it has ended, a line saying what it read.
 */
export class CheckLines {
  readonly #out: Output
  #last: CheckProgress | undefined

  constructor(out: Output) {
    this.#out = out
  }

  /** Shows `p` if it is of the check and says true; false for the fetch's own progress. */
  show(p: TransferProgress | undefined): boolean {
    const c = p?.check
    if (c !== undefined) {
      this.#last = c
      this.#out.event({ event: 'checking', ...c })
      this.#out.bar(checkLine(c))
      return true
    }
    const last = this.#last
    if (last !== undefined) {
      this.#last = undefined
      this.#out.done()
      this.#out.human(
        `checked ${formatBytes(last.bytesChecked)} (${plural(last.chunksChecked, 'chunk')}) in ${formatDuration(last.elapsedSeconds)} at ${formatRate(last.bytesChecked / Math.max(last.elapsedSeconds, 0.001))}`,
      )
    }
    return false
  }
}

const RESTART_REASON: Partial<Record<NonNullable<ResumeInfo['reason']>, string>> = {
  'other-content': 'another content',
  'part-size': 'a file of another size',
}

const ROUTE_TEXT: Record<TransferRoute, string> = {
  direct: 'connected directly',
  relayed: 'connected through a relay (the sender is not directly reachable from here)',
  upgraded: 'connected directly (a hole punch replaced the relayed connection)',
}

/**
 * Says how the transfer reaches its peers, as it starts and when that changes; with `stats`, how
 * many of them a relay carries when only some of its several peers are relayed.
 */
export function announceRoute(out: Output, route: TransferRoute, stats?: SwarmStats): void {
  out.event({ event: 'route', route })
  if (route === 'direct') return
  out.done()
  const some = route === 'relayed' ? relayedOf(stats) : undefined
  out.human(
    some === undefined
      ? ROUTE_TEXT[route]
      : `connected to ${some.relayed} of ${some.reached} senders through a relay (not directly reachable from here), to the others directly`,
  )
}

/** What the summary line says of retries: nothing when there were none. */
export function retriesText(retries: number): string {
  return retries > 0 ? `, ${retries} ${retries === 1 ? 'retry' : 'retries'}` : ''
}

/** How the summary line ends: how the peers were reached, unless all of them directly. */
export function viaText(stats: SwarmStats | undefined): string {
  const route = routeOf(stats)
  if (route === 'upgraded') return ', relayed then direct'
  if (route !== 'relayed') return ''
  const some = relayedOf(stats)
  return some === undefined
    ? ', through a relay'
    : `, ${some.relayed} of ${some.reached} senders through a relay`
}

/** Of the peers reached, how many were relayed, when that is some of them but not all. */
function relayedOf(stats: SwarmStats | undefined): { relayed: number; reached: number } | undefined {
  const reached = stats?.peers.filter((p) => p.route !== undefined) ?? []
  const relayed = reached.filter((p) => p.route === 'relayed').length
  return relayed > 0 && relayed < reached.length ? { relayed, reached: reached.length } : undefined
}

/** Says, as a `--wait` begins, who writes the destination (`holder`: a process, since when). */
export function announceWait(out: Output, dest: string, holder: string): void {
  // Absolute, as every other event's path.
  out.event({ event: 'waiting', path: resolve(dest), holder })
  out.human(
    `waiting: ${dest} is being written by ${holder}; this get goes on when it is done (Ctrl-C stops waiting)`,
  )
}

/**
 * The whole command's time beside the transfer's, when reaching the senders, waiting or checking
 * took a while before it (a first address that swallows packets costs its share of the connect
 * time): the summary's time is the transfer's alone, which would understate what the user waited.
 */
export function sinceStart(transferSeconds: number): string {
  const total = process.uptime()
  return total - transferSeconds >= 2 ? ` (${formatDuration(total)} since haul get started)` : ''
}
