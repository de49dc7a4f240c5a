/**
 * Peers that ask for chunks, stop reading and then leave, against the serving side: once they are
 * gone, every session they opened has ended and given back what it held (its leases, its holds on
 * cached chunks, its peer's share), whether they stopped their nodes (libp2p closes their streams,
 * then their connections) or reset their streams; an honest receiver then fetches the whole file.
 *
 * Eight peers is what makes a peer's share of the serving budget (three quarters of 16 MiB,
 * divided between the peers served) smaller than two 1 MiB chunks: each stream's read-ahead then
 * waits in its peer's share behind the chunk it is sending.
 */
import { join } from 'node:path'
import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Engine } from '../../src/engine/engine.ts'
import { createNode } from '../../src/net/node.ts'
import { encodeMessage } from '../../src/protocol/encoder.ts'
import { PROTOCOL_ID } from '../../src/protocol/messages.ts'
import type { ServeEvent } from '../../src/serve/serve-events.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { AttackClient, hello, type Target, targetOf } from './support/serving-attack.ts'

const MiB = 1024 * 1024
const FILE_MIB = 48
const PEERS = 8
const STREAMS_PER_PEER = 2
/** Nothing times these sessions out once their streams are gone: a generous bound, not a timing. */
const SETTLE_MS = 20_000

/** hello, then a request for chunks [0, 40): far more than a stream that is not read can take. */
const ask = (t: Target): Uint8Array[] => [
  ...hello(),
  ...encodeMessage({
    type: 'get-chunks',
    requestId: 1,
    cid: t.cid,
    ranges: [{ start: 0, end: 40 }],
    secret: t.secret,
  }),
]

describe('peers that ask for chunks, stop reading, then leave', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let sender: Engine
  let src: string
  let ticket: string
  let target: Target
  /** The attacking peers of the test running, and their sessions as the sender reports them. */
  const attackers = new Set<string>()
  const opened = new Set<number>()
  const ended = new Map<number, Extract<ServeEvent, { type: 'session-ended' }>>()

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // Default limits: a 16 MiB budget, 1 MiB chunks, readAhead 4.
    sender = await Engine.create({ workers: 1 })
    src = join(dir, 'f.src')
    await writeFile(src, FILE_MIB * MiB, 'random')
    ticket = (await sender.publish(src)).ticket
    target = targetOf(ticket)
    sender.onServe((e) => {
      if (e.type === 'session-opened' && attackers.has(e.peerId)) opened.add(e.session)
      if (e.type === 'session-ended' && opened.has(e.session)) ended.set(e.session, e)
    })
  })
  afterAll(async () => {
    await sender.stop()
    await cleanup()
  })

  /** Every attacking peer holds part of the budget, and read-ahead waits in the shares. */
  async function attackHolds(): Promise<void> {
    await expect.poll(() => sender.stats().serving.peersLeasing, { timeout: 10_000 }).toBe(PEERS)
    await expect.poll(() => opened.size).toBe(PEERS * STREAMS_PER_PEER)
    expect(sender.stats().serving.leasedBytes).toBeGreaterThanOrEqual(PEERS * MiB)
  }

  /** Once the attackers are gone: every session ended, nothing held for any peer, the budget idle. */
  async function expectAllGivenBack(): Promise<void> {
    await expect.poll(() => [...opened].filter((id) => !ended.has(id)).length, { timeout: SETTLE_MS }).toBe(0)
    await expect
      .poll(
        () => {
          const { serving, memory } = sender.stats()
          return {
            peers: serving.peers,
            peersLeasing: serving.peersLeasing,
            leasedBytes: serving.leasedBytes,
            workBytes: memory.workBytes,
          }
        },
        { timeout: SETTLE_MS },
      )
      .toEqual({ peers: 0, peersLeasing: 0, leasedBytes: 0, workBytes: 0 })
    const { memory, serving } = sender.stats()
    // What stays is idle: recycled buffers and cached chunks, each within its own bound.
    expect(memory.usedBytes).toBe(memory.buffers.idleBytes + serving.chunks.cachedBytes)
    expect(serving.chunks.cachedBytes).toBeLessThanOrEqual(serving.chunks.cacheLimitBytes)
    // Each session says the attack cut it off.
    expect([...ended.values()].filter((e) => e.reason !== 'failed' || !e.busy)).toEqual([])
    attackers.clear()
    opened.clear()
    ended.clear()
  }

  async function honestFetch(name: string): Promise<void> {
    const receiver = await Engine.create({ workers: 1 })
    try {
      const r = await receiver.fetch(ticket, join(dir, name)).result
      expect(r.bytes).toBe(FILE_MIB * MiB)
      expect(await sha256File(join(dir, name))).toBe(await sha256File(src))
    } finally {
      await receiver.stop()
    }
  }

  it('they stop their libp2p nodes: every session they opened ends and gives back what it held', async () => {
    // Bare libp2p nodes, as a script would use: stopping one closes its streams (the server sees
    // the requests end cleanly), then its connection.
    const nodes: Libp2p[] = []
    try {
      for (let p = 0; p < PEERS; p++) {
        const node = await createNode({ listen: [] })
        nodes.push(node)
        attackers.add(node.peerId.toString())
        const conn = await node.dial(multiaddr(`${target.addrs[0]!}/p2p/${target.peerId}`))
        for (let i = 0; i < STREAMS_PER_PEER; i++) {
          const s: Stream = await conn.newStream(PROTOCOL_ID)
          for (const part of ask(target)) s.send(part)
          // Reads nothing from here on: its window shuts once the server has filled it.
          s.pause()
        }
      }
      await attackHolds()
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
    await expectAllGivenBack()
    await honestFetch('after-stop.out')
  }, 60_000)

  it('they reset their streams: every session they opened ends and gives back what it held', async () => {
    const clients = await Promise.all(Array.from({ length: PEERS }, () => AttackClient.create()))
    try {
      for (const a of clients) {
        attackers.add(a.net.peerId)
        for (let i = 0; i < STREAMS_PER_PEER; i++) {
          // Its replies are never read: past its read buffer the stream pauses and its window shuts.
          const s = await a.open(target)
          await s.write(ask(target))
        }
      }
      await attackHolds()
    } finally {
      // Resets its streams, then stops its node.
      await Promise.all(clients.map((a) => a.stop()))
    }
    await expectAllGivenBack()
    await honestFetch('after-reset.out')
  }, 60_000)
})
