/**
 * An attack client against a haul engine's serving side: a libp2p node of its own that speaks
 * the wire format with haul's encoder and misbehaves on purpose. It holds the ticket (its
 * `Target` carries the ticket's secret), so it is served as a receiver would be. Each helper opens
 * one raw stream on /haul/transfer and returns what the test needs to watch it: the frames the
 * server sent back and when the stream ended.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { EngineOptions } from '../../../src/engine/config.ts'
import { Network } from '../../../src/net/network.ts'
import type { FrameStream } from '../../../src/net/stream-io.ts'
import { ENGINE_NODE_FLAGS } from '../../../src/process-flags.ts'
import { FrameDecoder } from '../../../src/protocol/decoder.ts'
import { encodeMessage } from '../../../src/protocol/encoder.ts'
import { DEFAULT_MAX_FRAME } from '../../../src/protocol/frame.ts'
import {
  MESSAGE_TYPES,
  PROTOCOL_ID,
  PROTOCOL_VERSION,
  type TransferMessage,
} from '../../../src/protocol/messages.ts'
import { decodeSwarmTicket } from '../../../src/ticket/multi-ticket.ts'

/** Attack streams must outlive anything the server does: our own idle timer stays out of the way. */
const HOUR_MS = 3_600_000

export interface Target {
  readonly peerId: string
  readonly addrs: readonly string[]
  readonly cid: Uint8Array
  /** The ticket's secret for this peer: an attacker that holds the ticket has it. */
  readonly secret: Uint8Array | undefined
}

export function targetOf(ticket: string): Target {
  const t = decodeSwarmTicket(ticket)
  const p = t.providers[0]!
  return { peerId: p.peerId, addrs: [...p.addrs], cid: t.cid, secret: p.secret }
}

export const hello = (): Uint8Array[] =>
  encodeMessage({
    type: 'hello',
    version: PROTOCOL_VERSION,
    codecs: ['none'],
    maxFrame: DEFAULT_MAX_FRAME,
  })

/** A get-chunks request for chunks [0, chunks) of the target's content, with its secret. */
export const askFor = (t: Target, chunks: number): Uint8Array[] =>
  encodeMessage({
    type: 'get-chunks',
    requestId: 1,
    cid: t.cid,
    ranges: [{ start: 0, end: chunks }],
    secret: t.secret,
  })

/** One attack stream as the test sees it. */
export interface Watched {
  readonly stream: FrameStream
  /** Frames the server sent, as they arrive. */
  readonly replies: TransferMessage[]
  /** performance.now() when the first `error` frame arrived. */
  errorAt: number | undefined
  /** Resolves once the stream ended (closed by the server, reset, or ours). */
  readonly ended: Promise<void>
  endedAt: number | undefined
  /** How it ended: 'closed' (a clean end of the server's replies) or 'reset'. */
  how: 'closed' | 'reset' | undefined
}

/** Reads everything the server says on `stream` (so its replies are never held up by us). */
function watch(stream: FrameStream): Watched {
  const w: Watched = {
    stream,
    replies: [],
    errorAt: undefined,
    endedAt: undefined,
    how: undefined,
    ended: Promise.resolve(),
  }
  const decoder = new FrameDecoder()
  ;(w as { ended: Promise<void> }).ended = (async () => {
    try {
      for await (const data of stream.incoming) {
        decoder.push(data)
        for (const m of decoder.frames()) {
          w.replies.push(m)
          if (m.type === 'error') w.errorAt ??= performance.now()
        }
      }
      w.how = 'closed'
    } catch {
      w.how = 'reset'
    } finally {
      w.endedAt = performance.now()
    }
  })()
  return w
}

/** The first `error` frame the server sent on a watched stream, if any. */
export function firstError(w: Watched): Extract<TransferMessage, { type: 'error' }> | undefined {
  return w.replies.find((m): m is Extract<TransferMessage, { type: 'error' }> => m.type === 'error')
}

export class AttackClient {
  readonly net: Network
  readonly #streams: FrameStream[] = []

  private constructor(net: Network) {
    this.net = net
  }

  /** `maxStreamsPerPeer`: how many streams this attacker may hold open to one peer at once. */
  static async create(opts: { maxStreamsPerPeer?: number } = {}): Promise<AttackClient> {
    return new AttackClient(await Network.create({ maxStreamsPerPeer: opts.maxStreamsPerPeer ?? 64 }))
  }

  async open(t: Target): Promise<FrameStream> {
    const s = await this.net.openStream(t.peerId, t.addrs, PROTOCOL_ID, { idleTimeoutMs: HOUR_MS })
    this.#streams.push(s)
    return s
  }

  /** hello, then `parts`, on a new stream whose replies are read and recorded. */
  async send(t: Target, parts: readonly Uint8Array[]): Promise<Watched> {
    const s = await this.open(t)
    const w = watch(s)
    await s.write([...hello(), ...parts]).catch(() => {})
    return w
  }

  /**
   * hello, then the 5-byte head of a `type` frame announced at `announce` bytes and `body`
   * bytes of it, and nothing more: the frame never finishes.
   */
  halfFrame(
    t: Target,
    announce: number,
    body: number,
    type: keyof typeof MESSAGE_TYPES = 'get-chunks',
  ): Promise<Watched> {
    const head = new Uint8Array(5)
    new DataView(head.buffer).setUint32(0, announce)
    head[4] = MESSAGE_TYPES[type]
    return this.send(t, [head, new Uint8Array(body)])
  }

  /** hello, then `frame` one byte every `gapMs`, until it is all sent or the stream ends. */
  async drip(t: Target, frame: Uint8Array, gapMs: number): Promise<Watched> {
    const s = await this.open(t)
    const w = watch(s)
    await s.write(hello())
    void (async () => {
      for (let i = 0; i < frame.length && w.endedAt === undefined; i++) {
        await s.write([frame.subarray(i, i + 1)]).catch(() => {})
        await sleep(gapMs)
      }
    })()
    return w
  }

  /**
   * Asks for chunks [0, chunks) and never reads a byte of the replies: the stream's read buffer
   * fills, it pauses and its window shuts. Meanwhile a `cancel` for a request id that does not
   * exist every `cancelEveryMs`, so inbound frames keep coming. Returns the stream, unread.
   */
  async neverReads(t: Target, chunks: number, cancelEveryMs: number): Promise<FrameStream> {
    const s = await this.open(t)
    await s.write([...hello(), ...askFor(t, chunks)])
    void (async () => {
      for (let id = 1_000_000; !s.closed; id++) {
        await sleep(cancelEveryMs)
        await s.write(encodeMessage({ type: 'cancel', requestId: id })).catch(() => {})
      }
    })()
    return s
  }

  async stop(): Promise<void> {
    for (const s of this.#streams) if (!s.closed) s.abort(new Error('attack over'))
    await this.net.stop()
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Resident memory of a process, in MB (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : (Number(m[1]) * 1024) / 1e6
}

/**
 * A sending engine in its own process, run with the flags the `haul` bin uses
 * (src/process-flags.ts), so that its resident memory is its own and measured as in use.
 * Publishes `file` and serves it until `stop`.
 */
export async function spawnSender(
  file: string,
  engine: EngineOptions = {},
): Promise<{ proc: ChildProcess; ticket: string; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('../../support/peer-child.ts', import.meta.url))
  const config = JSON.stringify({ mode: 'send', file, engine: { workers: 1, ...engine } })
  const proc = spawn(process.execPath, [...ENGINE_NODE_FLAGS, '--no-warnings', script, config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const ticket = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as { event: string; ticket?: string }
      if (e.event === 'published') resolve(String(e.ticket))
    })
    void exited.then(() => reject(new Error('the sender exited before publishing')))
  })
  return {
    proc,
    ticket,
    stop: async () => {
      proc.kill('SIGTERM')
      await exited
    },
  }
}
