/**
 * A peer's `error` frame cannot make the receiver report a condition of its own: a code that is
 * not a peer's to send (ABORTED is only ever the caller's cancel, NO_SPACE this disk, …), or one
 * this version does not know, is PEER_FAILED naming the code, not retried, with the peer's text
 * escaped. A real engine and a real `haul get` process against a sender of our own that serves
 * the header and answers every get-chunks with that error.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { type HaulError, PeerFailedError, WIRE_CODES } from '../../src/errors.ts'
import type { RetryInfo } from '../../src/transfer/retry.ts'
import { jsonEvents, runCli } from './support/local-cli.ts'
import { type FakeSender, useFakeSenders } from './support/receiver-sender.ts'

const CHUNK = 64 * 1024
const chunking = { kind: 'fixed', size: CHUNK } as const

describe('a peer that answers chunk requests with a code that is not its to send', () => {
  const fakes = useFakeSenders('haul-remote-codes-', chunking)

  function liar(code: number, message: string): Promise<FakeSender> {
    return fakes.start(async (req, call) => {
      if (req.type !== 'get-chunks') return call.honest(req)
      return call.send({ type: 'error', requestId: req.requestId, code, message })
    })
  }

  it.each([
    ['ABORTED', WIRE_CODES.ABORTED],
    ['NO_SPACE', WIRE_CODES.NO_SPACE],
    ['PERMISSION_DENIED', WIRE_CODES.PERMISSION_DENIED],
    ['TICKET_INVALID', WIRE_CODES.TICKET_INVALID],
    ['code 59999', 59999],
  ] as const)('%s: PEER_FAILED naming it, at once (no retry)', async (said, code) => {
    const s = await liar(code, 'x\x1b[2J')
    const engine = await Engine.create({ workers: 1, chunking })
    const retries: RetryInfo[] = []
    try {
      const err = (await engine
        .fetch(s.ticket, join(fakes.dir, `${code}.out`), { onRetry: (r) => retries.push(r) })
        .result.catch((e: unknown) => e)) as HaulError
      expect(err).toBeInstanceOf(PeerFailedError)
      expect(err.code).toBe('PEER_FAILED')
      expect((err as PeerFailedError).remoteWireCode).toBe(code)
      expect(err.message).toBe(`remote peer (${said}): x\\x1b[2J`)
      expect(retries).toEqual([])
    } finally {
      await engine.stop()
    }
  })

  it('haul get, human and --json: error [PEER_FAILED], never the local code', async () => {
    const s = await liar(WIRE_CODES.NO_SPACE, 'disk full')
    const human = await runCli(['get', s.ticket, '-o', join(fakes.dir, 'cli.out'), '--workers', '1'])
    expect(human.code).toBe(1)
    expect(human.stderr.toString()).toContain('error [PEER_FAILED]: remote peer (NO_SPACE): disk full')
    expect(human.stderr.toString()).not.toContain('error [NO_SPACE]')
    const json = await runCli(['get', s.ticket, '-o', join(fakes.dir, 'cli.out'), '--workers', '1', '--json'])
    expect(json.code).toBe(1)
    expect(jsonEvents(json).at(-1)).toMatchObject({
      event: 'error',
      code: 'PEER_FAILED',
      message: 'remote peer (NO_SPACE): disk full',
    })
  }, 60_000)
})
