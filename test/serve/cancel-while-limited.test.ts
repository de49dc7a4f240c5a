import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/index.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import type { TransferMessage } from '../../src/protocol/messages.ts'
import { AttackClient, targetOf } from '../hostile/support/serving-attack.ts'
import { tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'

const KiB = 1024
const CHUNK = 64 * KiB

/**
 * A sender whose uplink is slow queues chunks behind its upload limiter for seconds; a receiver
 * that meanwhile got a chunk elsewhere cancels the request. The chunk is then not sent, and its
 * turn goes to what comes next.
 */
describe('a request cancelled while its chunk waits for the upload limiter (real engine, raw client)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // 32 KiB/s, a 64 KiB burst: one 64 KiB chunk at once, the next two seconds later.
    sender = await Engine.create({
      workers: 1,
      codec: 'none',
      chunking: { kind: 'fixed', size: CHUNK },
      limits: { uploadBytesPerSec: 32 * KiB, burstBytes: 64 * KiB },
    })
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  it('is not sent; the next request is answered', async () => {
    const src = join(dir, 'f.src')
    await writeFile(src, 8 * CHUNK, 'random')
    const target = targetOf((await sender.publish(src)).ticket)
    const client = await AttackClient.create()
    const chunksOf = (replies: TransferMessage[], id: number) =>
      replies.filter((m) => m.type === 'chunk' && m.requestId === id).length
    try {
      const ask = { cid: target.cid, secret: target.secret }
      const w = await client.send(target, [
        ...encodeMessage({ type: 'get-chunks', requestId: 1, ranges: [{ start: 0, end: 1 }], ...ask }),
        ...encodeMessage({ type: 'get-chunks', requestId: 2, ranges: [{ start: 1, end: 2 }], ...ask }),
      ])
      await eventually(() => chunksOf(w.replies, 1) === 1, 'the first chunk, sent on the burst')
      // Request 2 is answered now: its chunk waits two seconds for tokens.
      await new Promise((r) => setTimeout(r, 300))
      await w.stream.write(encodeMessage({ type: 'cancel', requestId: 2 }))
      await w.stream.write(
        encodeMessage({ type: 'get-chunks', requestId: 3, ranges: [{ start: 2, end: 3 }], ...ask }),
      )
      await eventually(() => chunksOf(w.replies, 3) === 1, 'the third request answered')
      expect(chunksOf(w.replies, 2)).toBe(0)
      expect(sender.stats().serving.chunks.served).toBe(2)
    } finally {
      await client.stop()
    }
  })
})
