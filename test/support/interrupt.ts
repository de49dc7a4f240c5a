import { existsSync } from 'node:fs'
import { AbortedError } from '../../src/errors.ts'
import { createEngine, type EngineOptions } from '../../src/index.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from './fault-proxy.ts'

/**
 * Fetches `ticket` into `dest` through a slowed proxy and cancels the transfer
 * once `atBytes` are verified and written: a transfer interrupted mid-way,
 * leaving `<dest>.part` and its journal as a real run would. It uses an engine
 * of its own: an engine already connected to the sender would reuse that
 * connection (one per peer) and never go through the proxy.
 * Returns the bytes done when it stopped.
 */
export async function interruptedFetch(o: {
  ticket: string
  senderAddrs: readonly string[]
  dest: string
  atBytes: number
  rateBytesPerSec?: number
  engine?: EngineOptions
}): Promise<number> {
  const proxy = await FaultProxy.start({
    target: { port: tcpPortOf(o.senderAddrs) },
    rateBytesPerSec: o.rateBytesPerSec ?? 32 * 1024 * 1024,
  })
  const engine = await createEngine({ workers: 1, ...o.engine })
  try {
    let done = 0
    const handle = engine.fetch(proxyTicket(o.ticket, proxy), o.dest, {
      onProgress: (p) => {
        done = p.bytesDone
        if (p.bytesDone >= o.atBytes) handle.cancel()
      },
    })
    const err = await handle.result.then(
      () => new Error('the transfer finished before it could be interrupted'),
      (e: unknown) => e,
    )
    if (!(err instanceof AbortedError)) throw err
    if (!existsSync(`${o.dest}.part`)) throw new Error('the transfer finished before it could be interrupted')
    return done
  } finally {
    await engine.stop()
    await proxy.close()
  }
}
