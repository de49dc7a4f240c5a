import { existsSync } from 'node:fs'
import type { Engine } from '../../src/engine/engine.ts'
import { AbortedError } from '../../src/errors.ts'
import { FaultProxy, proxyTicket, tcpPortOf } from './fault-proxy.ts'

/**
 * Starts fetching `ticket` into `dest` through a slowed proxy and cancels the
 * transfer once `atBytes` are verified and written: a transfer interrupted
 * mid-way, leaving `<dest>.part` and its journal as a real run would.
 * Returns the bytes done when it stopped.
 */
export async function interruptedFetch(
  engine: Engine,
  ticket: string,
  senderAddrs: readonly string[],
  dest: string,
  atBytes: number,
  rateBytesPerSec = 32 * 1024 * 1024,
): Promise<number> {
  const proxy = await FaultProxy.start({ target: { port: tcpPortOf(senderAddrs) }, rateBytesPerSec })
  try {
    let done = 0
    const handle = engine.fetch(proxyTicket(ticket, proxy), dest, {
      onProgress: (p) => {
        done = p.bytesDone
        if (p.bytesDone >= atBytes) handle.cancel()
      },
    })
    const err = await handle.result.then(
      () => new Error('the transfer finished before it could be interrupted'),
      (e: unknown) => e,
    )
    if (!(err instanceof AbortedError)) throw err
    if (!existsSync(`${dest}.part`)) throw new Error('the transfer finished before it could be interrupted')
    return done
  } finally {
    await proxy.close()
  }
}
