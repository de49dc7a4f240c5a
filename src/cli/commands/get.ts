import type { EngineOptions } from '../../engine/config.ts'
import { AbortedError, InvalidArgumentError } from '../../errors.ts'
import type { ResumeInfo } from '../../fetch/resume.ts'
import type { Priority } from '../../resources/fair-queue.ts'
import { decodeSwarmTicket, joinTickets } from '../../ticket/multi-ticket.ts'
import type { TransferProgress } from '../../transfer/progress.ts'
import type { FetchResult } from '../../transfer/transfer-types.ts'
import { escapeControls } from '../../util/safe-text.ts'
import { EXIT } from '../args.ts'
import { describeError, formatBytes, formatDuration, formatRate, progressLine } from '../format.ts'
import type { Output } from '../output.ts'
import { StopSignals } from '../signals.ts'

export interface GetOptions {
  /** Where to write; default `haul-<first 16 hex digits of the content id>`. */
  readonly out?: string | undefined
  readonly overwrite: boolean
  readonly waitIfBusy: boolean
  /** This fetch's download limit, bytes per second. */
  readonly maxBytesPerSec?: number | undefined
  readonly priority?: Priority | undefined
}

/**
 * `haul get <ticket>...`: one ticket as given (naming one peer or several), or several tickets of
 * the same content joined into one (every peer they name is a provider).
 */
export async function runGet(
  tickets: readonly string[],
  opts: GetOptions,
  engineOptions: EngineOptions,
  out: Output,
): Promise<number> {
  if (tickets.length === 0) throw new InvalidArgumentError('missing argument: haul get <ticket>')
  const ticketText = tickets.length === 1 ? tickets[0]! : joinTickets([...tickets])
  const ticket = decodeSwarmTicket(ticketText)
  const dest = opts.out ?? `haul-${Buffer.from(ticket.cid).toString('hex').slice(0, 16)}`
  const { Engine } = await import('../../engine/engine.ts')
  const engine = await Engine.create(engineOptions)
  const stop = new StopSignals()
  try {
    const handle = engine.fetch(ticketText, dest, {
      overwrite: opts.overwrite,
      waitIfBusy: opts.waitIfBusy,
      ...(opts.maxBytesPerSec === undefined ? {} : { maxBytesPerSec: opts.maxBytesPerSec }),
      ...(opts.priority === undefined ? {} : { priority: opts.priority }),
      signal: stop.signal,
      onResume: (info, p) => announceResume(out, dest, info, p),
      onProgress: (p) => {
        out.event({ event: 'progress', ...p })
        out.bar(progressLine(p))
      },
      onRetry: (info) => {
        const { code, message } = describeError(info.error)
        out.event({
          event: 'retry',
          attempt: info.attempt,
          maxAttempts: info.maxAttempts,
          delayMs: info.delayMs,
          code,
          message,
        })
        out.done()
        out.human(
          `connection problem [${code}]: ${escapeControls(message)}; retry ${info.attempt}/${info.maxAttempts} in ${(info.delayMs / 1000).toFixed(1)} s`,
        )
      },
    })
    const r = await handle.result.catch((err: unknown) => {
      if (!(stop.stopped && err instanceof AbortedError)) throw err
      out.done()
      out.event({ event: 'interrupted', path: dest, progress: handle.progress() })
      out.human(`interrupted: ${dest}.part keeps what was verified; run the same command again to resume`)
      return undefined
    })
    if (r === undefined) return EXIT.interrupted
    out.done()
    reportDone(out, r)
    return EXIT.done
  } finally {
    stop.dispose()
    await engine.stop()
  }
}

/** Says, as the fetch starts, what an earlier run left at the destination and what becomes of it. */
function announceResume(out: Output, dest: string, info: ResumeInfo, p: TransferProgress): void {
  if (info.mode === 'fresh' || info.mode === 'present') return
  out.event({
    event: 'resuming',
    mode: info.mode,
    ...(info.reason === undefined ? {} : { reason: info.reason }),
    chunksKept: info.chunksKept,
    bytesKept: info.bytesKept,
    totalBytes: p.totalBytes,
    totalChunks: p.totalChunks,
  })
  out.done()
  if (info.mode === 'journal') {
    out.human(
      `resuming: ${formatBytes(info.bytesKept)} of ${formatBytes(p.totalBytes)} already here, verified (${info.chunksKept} of ${p.totalChunks} chunks)`,
    )
  } else if (info.mode === 'rehash') {
    out.human(
      `resuming: ${dest}.part has no usable journal (${info.reason ?? 'missing'}): checking its chunks against the content id, keeping what verifies`,
    )
  } else {
    out.human(
      `starting over: ${dest}.part held ${RESTART_REASON[info.reason ?? 'other-content'] ?? info.reason}`,
    )
  }
}

const RESTART_REASON: Partial<Record<NonNullable<ResumeInfo['reason']>, string>> = {
  'other-content': 'another content',
  'part-size': 'a file of another size',
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
  })
  if (r.resume.mode === 'present') {
    out.human(
      `${r.path} already holds this content (${formatBytes(r.bytes)}, verified by its content id): nothing to fetch`,
    )
    return
  }
  if (r.resume.chunksKept > 0) {
    out.human(
      `resumed (${r.resume.mode}): kept ${r.resume.chunksKept} chunks (${formatBytes(r.resume.bytesKept)}) from an earlier run`,
    )
  }
  const moved = r.resume.bytesKept > 0 ? `; fetched ${formatBytes(fetched)} in` : ','
  out.human(
    `received ${r.path}: ${formatBytes(r.bytes)} in ${r.chunks} chunks, every chunk verified${moved} ${formatDuration(r.seconds)} at ${formatRate(r.rate)}${r.retries > 0 ? `, ${r.retries} retries` : ''}`,
  )
}
