import { join } from 'node:path'
import type { CollectionProgress, CollectionResult } from '../../collection/fetch-collection.ts'
import { STAGING_NAME } from '../../collection/names.ts'
import type { Engine } from '../../engine/engine.ts'
import { AbortedError } from '../../errors.ts'
import { routeOf } from '../../transfer/transfer-types.ts'
import { escapeControls } from '../../util/safe-text.ts'
import { EXIT } from '../args.ts'
import { formatBytes, formatDuration, formatRate, plural } from '../format.ts'
import type { Output } from '../output.ts'
import type { StopSignals } from '../signals.ts'
import { announceResume, announceRoute, announceWait, CheckLines, retriesText, viaText } from './get-lines.ts'

/**
 * `haul get` of a collection ticket: the folder recreated at `dest`, with progress over the
 * whole collection (bytes, then files placed); `--json` also gives an event per file placed.
 */
export async function getFolder(
  engine: Engine,
  ticketText: string,
  dest: string,
  opts: {
    readonly overwrite: boolean
    readonly waitIfBusy: boolean
    readonly symlinks?: boolean | undefined
    readonly sync?: boolean | undefined
    readonly maxBytesPerSec?: number | undefined
    readonly priority?: 'low' | 'normal' | 'high' | undefined
    /** Add to a folder already there that is not an earlier copy (CollectionFetchOptions.intoExisting). */
    readonly intoExisting: boolean
  },
  out: Output,
  stop: StopSignals,
): Promise<number> {
  let last: CollectionProgress | undefined
  /** Waiting for another fetch writing `dest` (--wait), until the pack's bytes come. */
  let waiting = false
  const check = new CheckLines(out)
  const r = await engine
    .fetchCollection(ticketText, dest, {
      overwrite: opts.overwrite,
      waitIfBusy: opts.waitIfBusy,
      symlinks: opts.symlinks === true,
      sync: opts.sync !== false,
      intoExisting: opts.intoExisting,
      ...(opts.maxBytesPerSec === undefined ? {} : { maxBytesPerSec: opts.maxBytesPerSec }),
      ...(opts.priority === undefined ? {} : { priority: opts.priority }),
      signal: stop.signal,
      onProgress: (p) => {
        if (p.phase !== last?.phase && p.phase === 'fetching' && p.bytesDone > 0) out.done()
        if (p.phase !== 'manifest') waiting = false
        last = p
        if (check.show(p.transfer)) return
        const { transfer, ...rest } = p
        out.event({ event: 'progress', ...rest, ...(transfer === undefined ? {} : { rate: transfer.rate }) })
        out.bar(folderLine(p))
      },
      onFile: (f) => out.event({ event: 'file', ...f }),
      onRetry: (info) => out.retry(info),
      onResume: (info, p) => announceResume(out, join(dest, STAGING_NAME, 'pack.part'), info, p),
      onRoute: (route) => announceRoute(out, route),
      onWait: (holder) => {
        waiting = true
        announceWait(out, dest, holder)
      },
    })
    .catch((err: unknown) => {
      if (!(stop.stopped && err instanceof AbortedError)) throw err
      return undefined
    })
  out.done()
  if (r === undefined) {
    out.event({ event: 'interrupted', path: dest, progress: last })
    // The list of files is fetched to a temporary file and kept only once it is whole.
    out.human(
      waiting
        ? `interrupted while waiting for the fetch writing ${dest}: nothing was written`
        : last === undefined || last.phase === 'manifest'
          ? 'interrupted while fetching the list of files: nothing was kept; run the same command again to start over'
          : `interrupted: ${dest}/.haul-incoming keeps what was verified; run the same command again to resume`,
    )
    return EXIT.interrupted
  }
  reportFolder(out, r)
  return EXIT.done
}

function folderLine(p: CollectionProgress): string {
  // Bytes on their way count on the line, as for a file (progressLine).
  const received = p.bytesDone + (p.transfer?.bytesArriving ?? 0)
  const pct = p.bytes > 0 ? (100 * received) / p.bytes : 100
  if (p.phase === 'manifest') return 'fetching the list of files…'
  if (p.phase === 'reading')
    return `reading the ${p.files} files already here, to keep what still matches…  ${formatBytes(p.bytesRead ?? 0)} read`
  if (p.phase === 'placing' || p.phase === 'done') return `placing files  ${p.filesPlaced} / ${p.files}`
  const rate = p.transfer === undefined ? '' : `  ${formatRate(p.transfer.rate)}`
  return `${pct.toFixed(1)}%  ${formatBytes(received)} / ${formatBytes(p.bytes)}  ${p.files} files${rate}`
}

function reportFolder(out: Output, r: CollectionResult): void {
  // The pack carries the folder's bytes: its route is the folder's.
  const route = routeOf(r.pack?.swarm)
  out.event({
    event: 'done',
    kind: 'collection',
    path: r.path,
    name: r.name,
    files: r.files,
    folders: r.folders,
    links: r.links,
    bytes: r.bytes,
    seconds: r.seconds,
    rate: r.rate,
    resumed: r.resumed,
    present: r.present,
    ...(r.pack === undefined ? {} : { resume: r.pack.resume, retries: r.pack.retries }),
    ...(route === undefined ? {} : { route }),
  })
  if (r.present) {
    out.human(
      `${escapeControls(r.path)} already holds this folder (${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, verified by its content id): nothing to fetch`,
    )
    return
  }
  const kept = r.pack?.resume.bytesKept ?? 0
  if (kept > 0 && r.pack?.resume.reason === 'local-files') {
    out.human(`kept ${formatBytes(kept)} of the files already here, fetched ${formatBytes(r.bytes - kept)}`)
  } else if (kept > 0) out.human(`resumed: kept ${formatBytes(kept)} from an earlier run`)
  const links =
    r.links.created > 0
      ? `, ${plural(r.links.created, 'link')}`
      : r.links.skipped > 0
        ? ` (${plural(r.links.skipped, 'link')} skipped: --symlinks creates them)`
        : ''
  const via = viaText(r.pack?.swarm)
  out.human(
    `received ${escapeControls(r.path)}: ${plural(r.files, 'file')} in ${plural(r.folders, 'folder')}${links}, ${formatBytes(r.bytes)}, every file verified, ${formatDuration(r.seconds)} at ${formatRate(r.rate)}${retriesText(r.pack?.retries ?? 0)}${via}`,
  )
}
