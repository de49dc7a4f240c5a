import type { EngineOptions } from '../../engine/config.ts'
import type { Engine } from '../../engine/engine.ts'
import { AbortedError } from '../../errors.ts'
import { ticketAddresses } from '../../net/addresses.ts'
import { EXIT } from '../args.ts'
import { metricsLine } from '../format.ts'
import type { Output } from '../output.ts'
import { ServeReport } from '../serve-report.ts'
import { StopSignals } from '../signals.ts'

/** What a serving command serves: its ticket, whether it is public, the line that introduces it, and its JSON event. */
export interface ServedItem {
  readonly ticket: string
  /** Served to anyone naming its content id (--public), not only to holders of the ticket. */
  readonly public: boolean
  readonly intro: string
  readonly event: Record<string, unknown>
  /** Announced on the DHT: the content id, and whether the first announcement reached a peer. */
  readonly announced?: { readonly cid: string; readonly reached: Promise<boolean> }
}

/** How a receiver on the DHT fetches announced content: this engine is a bootstrap peer too. */
function dhtLine(engine: Engine, serving: ServedItem): string {
  if (serving.announced === undefined) return ''
  const addr = ticketAddresses(engine.addresses, engine.peerId)[0]
  const boot = addr === undefined ? '' : ` --bootstrap ${addr}/p2p/${engine.peerId}`
  return `or, on the DHT:       haul get ${serving.announced.cid}${boot}\n`
}

/**
 * Runs an engine that serves what `start` publishes (or seeds) until Ctrl-C, SIGTERM, SIGHUP or
 * a closed output (src/cli/signals.ts), showing what it serves as it goes (ServeReport). Stopped
 * once serving, that is how serving ends: exit 0 (141 for a closed output: main.ts), after the
 * summary. Interrupted before (while indexing), exit 130.
 */
export async function serveUntilStopped(
  engineOptions: EngineOptions,
  out: Output,
  start: (engine: Engine, signal: AbortSignal) => Promise<ServedItem>,
): Promise<number> {
  const { Engine } = await import('../../engine/engine.ts')
  const engine = await Engine.create(engineOptions)
  const stop = new StopSignals()
  const report = new ServeReport(out)
  const off = engine.onServe(report.onEvent)
  let stopped = false
  try {
    const serving = await start(engine, stop.signal).catch((err: unknown) => {
      if (!(stop.stopped && err instanceof AbortedError)) throw err
      return undefined
    })
    out.done()
    if (serving === undefined) {
      out.event({ event: 'interrupted' })
      out.human('interrupted before serving anything')
      return EXIT.interrupted
    }
    const metrics = engine.metricsAddress
    out.event({ ...serving.event, public: serving.public, ...(metrics === undefined ? {} : { metrics }) })
    const access = serving.public
      ? `public (${serving.announced === undefined ? '--public' : 'announced on the DHT'}): anyone who knows its content id can fetch it`
      : 'only holders of the ticket can fetch it: share it as you would a password'
    out.human(
      `${serving.intro}\n${access}\n${metrics === undefined ? '' : `${metricsLine(metrics)}\n`}\nticket:\n${serving.ticket}\n\nrun on the receiver:  haul get ${serving.ticket}\n${dhtLine(engine, serving)}Ctrl-C stops serving.\n`,
    )
    void serving.announced?.reached.then((reached) => {
      out.event({ event: 'announced', cid: serving.announced!.cid, reached })
      if (!reached) out.human('no other DHT peer yet: the announcement is sent again until one takes it')
    })
    await stop.wait()
    // The engine's stop reports every session still open (and whether it was cut off) first.
    stopped = true
    await engine.stop()
    report.summary()
    return EXIT.done
  } finally {
    off()
    stop.dispose()
    if (!stopped) await engine.stop()
  }
}
