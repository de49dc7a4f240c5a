import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { Network } from '../../../src/net/network.ts'
import type { FrameStream } from '../../../src/net/stream-io.ts'
import { FrameDecoder } from '../../../src/protocol/decoder.ts'
import { encodeMessage } from '../../../src/protocol/encoder.ts'
import { PROTOCOL_ID, PROTOCOL_VERSION, type TransferMessage } from '../../../src/protocol/messages.ts'
import { MemoryBudget } from '../../../src/resources/memory-budget.ts'
import { indexFile } from '../../../src/serve/indexer.ts'
import { openPublished } from '../../../src/serve/publish.ts'
import type { PublishedContent } from '../../../src/serve/registry.ts'
import { encodeTicket } from '../../../src/ticket/ticket.ts'
import type { ChunkingParams } from '../../../src/types.ts'
import { WorkerPool } from '../../../src/workers/pool.ts'
import { tempDir, writeFile } from '../../support/files.ts'

type Msg<T extends TransferMessage['type']> = Extract<TransferMessage, { type: T }>
export type FakeRequest = Msg<'get-header' | 'get-pages' | 'get-chunks' | 'get-have'>

/** What a behaviour gets for one request on one stream. */
export interface FakeCall {
  readonly content: PublishedContent
  /** Writes frames in order (one write at a time per stream); rejects once the stream is gone. */
  send(msgs: TransferMessage | TransferMessage[]): Promise<void>
  /** Answers `req` as an honest sender would. */
  honest(req: FakeRequest): Promise<void>
  /** Sends `msg` every `ms` until the stream or the sender is gone (never rejects). */
  repeat(msg: TransferMessage, ms: number): Promise<void>
  /** 1 for the first stream the sender accepted, 2 for the next… */
  readonly streamNo: number
}

/** Answers one request; may send anything, at any pace. */
export type Behaviour = (req: FakeRequest, call: FakeCall) => Promise<void>

export interface FakeSender {
  readonly network: Network
  readonly ticket: string
  readonly content: PublishedContent
  /** Streams accepted so far. */
  readonly streams: number
  /** Frames written so far (all streams). */
  readonly framesSent: number
  stop(): Promise<void>
}

/** A chunk frame for chunk `index` of `content`, codec 'none'. */
export async function chunkFrame(
  content: PublishedContent,
  requestId: number,
  index: number,
): Promise<Msg<'chunk'>> {
  const e = await content.reader.entry(index)
  const payload = new Uint8Array(e.length)
  await content.source.read(e.offset, e.length, payload)
  return { type: 'chunk', requestId, index, codec: 'none', rawLength: e.length, payload }
}

export async function pageFrame(
  content: PublishedContent,
  requestId: number,
  pageIndex: number,
): Promise<Msg<'page'>> {
  const { entries, proof } = await content.reader.readPage(pageIndex)
  return { type: 'page', requestId, pageIndex, entries, proof }
}

/**
 * A serving peer of our own that speaks the wire format (encodeMessage) but answers each request
 * as `behaviour` says: honestly, with repeats, trickles, or nothing. It serves one file, indexed
 * with `chunking`, and keeps sending until the stream is reset or `stop()`.
 */
export async function startFakeSender(
  file: string,
  behaviour: Behaviour,
  opts: { chunking: ChunkingParams; hello?: boolean },
): Promise<FakeSender> {
  const pool = new WorkerPool({ threads: 1 })
  const budget = new MemoryBudget({ limit: 64 * 1024 * 1024 })
  let content: PublishedContent
  try {
    const index = await indexFile(file, { chunking: opts.chunking, pool, budget })
    content = await openPublished(file, index)
  } finally {
    await pool.destroy()
  }
  const network = await Network.create({ listen: ['/ip4/127.0.0.1/tcp/0'], idleTimeoutMs: 120_000 })
  let stopped = false
  let streams = 0
  let framesSent = 0
  const live = new Set<FrameStream>()

  await network.handle(
    PROTOCOL_ID,
    async (stream) => {
      const streamNo = ++streams
      live.add(stream)
      let tail: Promise<void> = Promise.resolve()
      const send = (msgs: TransferMessage | TransferMessage[]): Promise<void> => {
        const list = Array.isArray(msgs) ? msgs : [msgs]
        const p = tail.then(() => {
          if (stopped || stream.closed) throw new Error('stream gone')
          framesSent += list.length
          return stream.write(list.flatMap((m) => encodeMessage(m)))
        })
        tail = p.catch(() => {})
        return p
      }
      const honest = async (req: FakeRequest): Promise<void> => {
        switch (req.type) {
          case 'get-header':
            return send({ type: 'header', requestId: req.requestId, header: content.headerBytes })
          case 'get-pages':
            for (let p = req.firstPage; p < req.firstPage + req.count; p++) {
              await send(await pageFrame(content, req.requestId, p))
            }
            return send({ type: 'end', requestId: req.requestId })
          case 'get-chunks':
            for (const r of req.ranges) {
              for (let i = r.start; i < r.end; i++) await send(await chunkFrame(content, req.requestId, i))
            }
            return send({ type: 'end', requestId: req.requestId })
          case 'get-have':
            return send([
              {
                type: 'have',
                requestId: req.requestId,
                complete: true,
                start: 0,
                count: 0,
                bits: new Uint8Array(),
              },
              { type: 'end', requestId: req.requestId },
            ])
        }
      }
      const repeat = async (msg: TransferMessage, ms: number): Promise<void> => {
        while (!stopped && !stream.closed) {
          await new Promise((r) => setTimeout(r, ms))
          if (
            !(await send(msg).then(
              () => true,
              () => false,
            ))
          )
            return
        }
      }
      const call: FakeCall = { content, send, honest, repeat, streamNo }
      const decoder = new FrameDecoder()
      let greeted = false
      try {
        for await (const data of stream.incoming) {
          decoder.push(data)
          for (const m of decoder.frames()) {
            if (!greeted) {
              greeted = true
              // Without a hello (`hello: false`) the stream stays open and nothing more is answered.
              if (opts.hello !== false)
                void send({ type: 'hello', version: PROTOCOL_VERSION, codecs: ['none'], maxFrame: 8 << 20 })
              continue
            }
            if (opts.hello === false) continue
            if (
              m.type === 'get-header' ||
              m.type === 'get-pages' ||
              m.type === 'get-chunks' ||
              m.type === 'get-have'
            ) {
              // Not awaited: a trickling answer must not keep the next request from being read.
              void behaviour(m, call).catch(() => {})
            }
          }
        }
      } catch {
        // reset by the receiver: the point of most tests
      } finally {
        // The receiver closed its side: keep ours open (a hostile peer never closes first) until
        // the stream is reset or the sender stops.
        while (!stopped && !stream.closed) await new Promise((r) => setTimeout(r, 100))
        live.delete(stream)
      }
    },
    { idleTimeoutMs: 120_000 },
  )
  const ticket = encodeTicket({ cid: content.cid, peerId: network.peerId, addrs: network.addresses })
  return {
    network,
    ticket,
    content,
    get streams() {
      return streams
    },
    get framesSent() {
      return framesSent
    },
    async stop() {
      stopped = true
      for (const s of live) s.abort(new Error('fake sender stopped'))
      await network.stop()
      await content.reader.close()
      await content.source.close()
    },
  }
}

/** get-pages: the first page asked for, then that page again every `ms`, never `end`. The rest honest. */
export function repeatPage(ms = 500): Behaviour {
  return async (req, call) => {
    if (req.type !== 'get-pages') return call.honest(req)
    const page = await pageFrame(call.content, req.requestId, req.firstPage)
    await call.send(page)
    await call.repeat(page, ms)
  }
}

/**
 * get-chunks: honest until `after` chunks were sent (over all streams); from then on each request
 * gets its first chunk, then that chunk again every `ms`, never `end`. The rest honest.
 */
export function repeatChunk(ms = 500, after = 0): Behaviour {
  let served = 0
  return async (req, call) => {
    if (req.type !== 'get-chunks') return call.honest(req)
    if (served < after) {
      served += req.ranges.reduce((n, r) => n + r.end - r.start, 0)
      return call.honest(req)
    }
    const chunk = await chunkFrame(call.content, req.requestId, req.ranges[0]!.start)
    await call.send(chunk)
    await call.repeat(chunk, ms)
  }
}

/** get-header answered; every later request on the stream gets that header frame again every `ms`, and nothing else. */
export function repeatHeader(ms = 500): Behaviour {
  const headers = new Map<number, TransferMessage>()
  return async (req, call) => {
    if (req.type === 'get-header') {
      const header: TransferMessage = {
        type: 'header',
        requestId: req.requestId,
        header: call.content.headerBytes,
      }
      headers.set(call.streamNo, header)
      return call.send(header)
    }
    const header = headers.get(call.streamNo)
    if (header !== undefined) await call.repeat(header, ms)
  }
}

/** A file of four chunks and the fake senders of it that a describe starts (useFakeSenders). */
export interface FakeSenders {
  /** The temporary folder: the file, and room for what the tests fetch. */
  readonly dir: string
  readonly src: string
  /**
   * A fake sender of `src` answering as `behaviour` says (with `hello: false`, nothing at all on
   * a stream it holds open); stopped after the describe's tests.
   */
  start(behaviour: Behaviour, o?: { hello?: boolean }): Promise<FakeSender>
}

/**
 * For a describe: a temporary folder named from `prefix` with `src.bin` of four `chunking`
 * chunks (one leaf page), and `start` for fake senders of it; all gone after its tests.
 */
export function useFakeSenders(
  prefix: string,
  chunking: Extract<ChunkingParams, { kind: 'fixed' }>,
): FakeSenders {
  const senders: FakeSender[] = []
  let cleanup: (() => Promise<void>) | undefined
  const fakes = {
    dir: '',
    src: '',
    async start(behaviour: Behaviour, o: { hello?: boolean } = {}): Promise<FakeSender> {
      const s = await startFakeSender(fakes.src, behaviour, { chunking, ...o })
      senders.push(s)
      return s
    },
  }
  beforeAll(async () => {
    const t = await tempDir(prefix)
    cleanup = t.cleanup
    fakes.dir = t.dir
    fakes.src = join(t.dir, 'src.bin')
    await writeFile(fakes.src, 4 * chunking.size, 'random')
  })
  afterAll(async () => {
    await Promise.allSettled(senders.map((s) => s.stop()))
    await cleanup?.()
  })
  return fakes
}
