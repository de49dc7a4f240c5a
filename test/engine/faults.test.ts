import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { ChunkVerificationError, ContentNotFoundError, TicketInvalidError } from '../../src/errors.ts'
import { decodeTicket, encodeTicket } from '../../src/ticket/ticket.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { corrupting, startSender } from '../support/sender.ts'

const MiB = 1024 * 1024

describe('a serving peer that corrupts chunks', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let receiver: Engine

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    receiver = await Engine.create({ workers: 1 })
  })
  afterAll(async () => {
    await receiver.stop()
    await cleanup()
  })

  it('corrupting chunk 2 once: the receiver refetches it and completes verified', async () => {
    const wrap = corrupting((i, n) => i === 2 && n === 1)
    const sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap })
    try {
      const src = join(dir, 'once.src')
      await writeFile(src, 5 * MiB + 3, 'random')
      const ticket = await sender.publish(src)
      const r = await receiver.fetch(ticket, join(dir, 'once.out')).result
      expect(r.bytes).toBe(5 * MiB + 3)
      expect(await sha256File(join(dir, 'once.out'))).toBe(await sha256File(src))
      expect(wrap.stats.corrupted).toBe(1)
    } finally {
      await sender.stop()
    }
  })

  it('corrupting chunk 1 every time: fails with ChunkVerificationError and the bad bytes never reach the file', async () => {
    const wrap = corrupting((i) => i === 1)
    const sender = await startSender({ chunking: { kind: 'fixed', size: MiB }, wrap })
    try {
      const src = join(dir, 'always.src')
      await writeFile(src, 3 * MiB, 'random')
      const ticket = await sender.publish(src)
      const dest = join(dir, 'always.out')
      const err = await receiver.fetch(ticket, dest).result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ChunkVerificationError)
      expect(wrap.stats.corrupted).toBe(3) // defaultSwarmOptions.maxPeerFailures
      expect(existsSync(dest)).toBe(false)
      // The part file is kept for a later resume; chunk 1's range holds no corrupt byte (zeros or nothing).
      const part = await readFile(`${dest}.part`)
      const chunk1 = part.subarray(MiB, 2 * MiB)
      const original = (await readFile(src)).subarray(MiB, 2 * MiB)
      expect(chunk1.every((b) => b === 0) || chunk1.equals(original)).toBe(true)
      expect(receiver.stats().memory.workBytes).toBe(0)
    } finally {
      await sender.stop()
    }
  })
})

describe('tickets and unknown content', () => {
  it('a ticket for content the peer does not publish fails with CONTENT_NOT_FOUND', async () => {
    const { dir, cleanup } = await tempDir()
    const sender = await Engine.create({ workers: 1 })
    const receiver = await Engine.create({ workers: 1 })
    try {
      const ticket = encodeTicket({
        cid: new Uint8Array(32).fill(7),
        peerId: sender.peerId,
        addrs: sender.addresses,
      })
      const err = await receiver.fetch(ticket, join(dir, 'x')).result.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ContentNotFoundError)
      expect((err as ContentNotFoundError).code).toBe('CONTENT_NOT_FOUND')
    } finally {
      await Promise.all([sender.stop(), receiver.stop()])
      await cleanup()
    }
  })

  it('round-trips tickets and rejects damaged ones with TicketInvalidError', () => {
    const t = {
      cid: new Uint8Array(32).map((_, i) => i),
      peerId: '12D3KooWabc',
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
    }
    const text = encodeTicket(t)
    expect(decodeTicket(text)).toEqual(t)
    expect(() => decodeTicket(text.slice(0, -3))).toThrow(TicketInvalidError)
    expect(() => decodeTicket(`${text}aa`)).toThrow(TicketInvalidError)
    expect(() => decodeTicket(text.replace('haul1', 'haul2'))).toThrow(TicketInvalidError)
    expect(() => decodeTicket(`${text.slice(0, 10)}!${text.slice(11)}`)).toThrow(TicketInvalidError)
  })
})
