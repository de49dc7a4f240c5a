/**
 * Noise as @chainsafe/libp2p-noise 17 does it, with five costs of its connection stream taken out.
 * The handshake, the keys, the nonces and the bytes on the wire are the library's own.
 *
 * 1. **A copy per received message.** Noise's stream decrypts "in place": for a message split
 *    across two TCP reads (most 64 KiB messages are) it first concatenates the ciphertext into a
 *    new buffer for the plaintext to overwrite. Node's cipher (noise-crypto.ts) cannot decrypt
 *    in place and ignores that buffer, so each such message cost an allocation and a 64 KiB copy
 *    for nothing: ~0.6 s of the receiver's main thread per GiB, and one more dead buffer per
 *    message for V8 to collect. Here a split message is handed to the cipher as its pieces.
 * 2. **Several syscalls per sent message.** The TCP connection calls `socket.write` for each
 *    piece of what it is given: a 2-byte length, the ciphertext and the 16-byte tag for every
 *    Noise message. An idle socket writes each at once, so one message cost up to three write
 *    syscalls and, with Nagle off, three TCP segments. Here the socket is corked for the length
 *    of each send, so Node hands the kernel one writev.
 * 3. **An unbounded ciphertext queue under many streams.** Noise encrypts everything waiting in
 *    its queue in one go when the TCP connection drains, and the TCP connection keeps whatever the
 *    socket refuses. With many streams sending at once (one peer's 64 streams each reading a whole
 *    file), each drain would move every stream's queued frames into that TCP queue as ciphertext,
 *    which no budget counts: the send ledger lets go of a chunk's lease once it is encrypted
 *    (measured: 108 MB of live buffers in a sender with a 16 MiB budget). Here Noise hands the TCP connection at
 *    most `NOISE_SEND_BATCH_BYTES` at a time, and only once its queue is empty, so the rest waits
 *    in Noise's queue as plaintext: views of chunk buffers whose leases the ledger still holds.
 * 4. **An exception per received read.** Noise's framing asks its length decoder for the next
 *    prefix until that throws a RangeError for want of bytes, which happens at the end of every
 *    TCP read: ~2 % of each side's main thread at 10,000 transfers (stack traces). Here the
 *    framing checks the byte count first; it takes over whatever the old decoder held.
 * 5. **Sent ciphertext freed only by a full GC.** Each message's ciphertext is a fresh buffer
 *    from the C allocator that V8 frees at its next full GC, tens of MB later; glibc then keeps
 *    its heap at that high-water mark. Here the socket frees each piece once it has written it
 *    (`releaseWhenWritten`, noise-crypto.ts's `releaseCiphertext`).
 *
 * It also records, for each secured connection, the TCP connection below it (`wireOf`): what the
 * kernel has yet to take, what it was given that the peer has not acknowledged, and what was
 * read. A slow link's bytes spend seconds there (send-ledger.ts's Flight), and a connection that
 * reads nothing and gets nothing into the network is dead (connection-liveness.ts).
 *
 * All five are per-connection instance changes made as the connection is secured, and only when the
 * objects have the shape this was written against; otherwise the connection is left as Noise
 * made it (still correct, just slower). `test/net/tuning/noise-stream.test.ts` checks the shape is
 * still found and that a tuned node and a stock one understand each other.
 */
import { Socket } from 'node:net'
import { type NoiseInit, noise } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface'
import { isUint8ArrayList, Uint8ArrayList } from 'uint8arraylist'
import { isRelayedAddress } from '../addresses.ts'
import { kernelUnacked } from './kernel-queue.ts'
import { isOwnCiphertext, releaseCiphertext } from './noise-crypto.ts'

type NoiseFactory = ReturnType<typeof noise>
type NoiseComponents = Parameters<NoiseFactory>[0]
type Bytes = Uint8Array | Uint8ArrayList

/** Noise's largest message: 2^16 - 1 bytes, tag included (the spec's limit). */
const MAX_MESSAGE_BYTES = 65_535
const TAG_BYTES = 16
const LENGTH_BYTES = 2
/** Bytes noise's framing may hold before it gives up on the connection (the library's own limit). */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024
/**
 * Plaintext Noise encrypts and hands the TCP connection per send: what the TCP connection and its
 * socket hold beyond the budget, per connection, is at most this and the socket's high-water mark.
 * One 1 MiB write slice (stream-io.ts `writeSliceBytes`) with its yamux header fits, so a single
 * stream's frame still goes out as one encryption and one writev.
 */
export const NOISE_SEND_BATCH_BYTES = 1024 * 1024 + 64 * 1024

/** What noise's EncryptedMessageStream has that is used here. */
interface NoiseMessageStream {
  maxMessageSize?: number | undefined
  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean }
  handshake: { decrypt(ciphertext: Bytes, dst?: Uint8Array): Bytes }
  decrypt(chunk: Bytes): unknown
  decoder: { decode(data: Bytes): Iterable<Uint8ArrayList>; buffer?: unknown }
}

/** What @libp2p/tcp's connection has that is used here. */
interface TcpMessageStream {
  socket: Socket
  readonly writeBufferLength: number
  sendData(data: Iterable<Uint8Array>): unknown
}

/** Connection streams tuned here, each in every way this module tunes it (for tests: the shape was found). */
const tuned = new WeakSet<object>()

export function isTuned(stream: unknown): boolean {
  return typeof stream === 'object' && stream !== null && tuned.has(stream)
}

/** `noise(init)` whose secured connections get the changes above. */
export function tunedNoise(init: NoiseInit = {}): NoiseFactory {
  const factory = noise(init)
  return (components: NoiseComponents) => {
    const inner = factory(components)
    // Everything else (protocol, capabilities, toStringTag) is the library's own object.
    const outer: ConnectionEncrypter<unknown> = Object.create(inner)
    outer.secureOutbound = async (conn, opts) => tune(await inner.secureOutbound(conn, opts), conn)
    outer.secureInbound = async (conn, opts) => tune(await inner.secureInbound(conn, opts), conn)
    return outer as ReturnType<NoiseFactory>
  }
}

function tune<T extends SecuredConnection<unknown>>(secured: T, raw: unknown): T {
  const stream: unknown = secured.connection
  if (isNoiseMessageStream(stream)) {
    const handshake = stream.handshake
    stream.decrypt = (chunk: Bytes) => decryptMessage(handshake, chunk)
    const held = stream.decoder.buffer
    if (isUint8ArrayList(held)) {
      stream.decoder = new NoiseFraming(held as Uint8ArrayList)
      tuned.add(stream)
    }
  }
  if (isTcpMessageStream(raw)) {
    releaseWhenWritten(raw.socket)
    corkSends(raw)
    tuned.add(raw)
    wires.set(secured.connection as object, tcpWire(raw))
  }
  if (isNoiseMessageStream(stream) && hasWriteQueue(raw)) sendWhenBelowIsEmpty(stream, raw)
  if (isCircuit(raw)) throughRelay.add(secured.connection as object)
  return secured
}

/**
 * The TCP connection below a secured connection, as far as the kernel is concerned: what it
 * still holds to send and what it has read. Noise's own queue is above it.
 */
export interface Wire {
  /** Ciphertext bytes handed to the TCP connection that the kernel has not taken yet. */
  readonly unsent: number
  /** Bytes read from the socket so far. */
  readonly bytesRead: number
  /** Bytes the kernel took that the peer has not acknowledged, or undefined (kernel-queue.ts). */
  readonly unacked: number | undefined
}

const wires = new WeakMap<object, Wire>()

/** The TCP connection below a secured connection, or undefined (through a relay, or not tuned here). */
export function wireOf(secured: unknown): Wire | undefined {
  return typeof secured === 'object' && secured !== null ? wires.get(secured) : undefined
}

function tcpWire(conn: TcpMessageStream): Wire {
  const socket = conn.socket
  return {
    // The TCP stream queues what the socket refused; the socket buffers what libuv has not written.
    get unsent() {
      return conn.writeBufferLength + socket.writableLength
    },
    get bytesRead() {
      return socket.bytesRead
    },
    get unacked() {
      return kernelUnacked(socket)
    },
  }
}

/** Secured connections that run through a circuit relay (see window-updates.ts for why it matters). */
const throughRelay = new WeakSet<object>()

/** True for the secured stream of a connection through a circuit relay. */
export function isThroughRelay(stream: unknown): boolean {
  return typeof stream === 'object' && stream !== null && throughRelay.has(stream)
}

function isCircuit(raw: unknown): boolean {
  const addr = (raw as { remoteAddr?: { toString(): string } } | undefined)?.remoteAddr
  return addr !== undefined && isRelayedAddress(addr.toString())
}

/**
 * One message (a chunk is one: its length prefix is 16 bits), decrypted as noise does, except that
 * a split message is not concatenated into a `dst` first. A contiguous one still gets its `dst`:
 * the small-message cipher (WebAssembly) decrypts into it.
 */
function decryptMessage(handshake: NoiseMessageStream['handshake'], chunk: Bytes): Bytes {
  if (chunk.byteLength < TAG_BYTES || chunk.byteLength > MAX_MESSAGE_BYTES) throw new Error('Invalid chunk')
  return chunk instanceof Uint8Array
    ? handshake.decrypt(chunk, chunk.subarray(0, chunk.byteLength - TAG_BYTES))
    : handshake.decrypt(chunk)
}

/**
 * Noise's length-prefixed messages out of the received bytes, as @libp2p/utils'
 * LengthPrefixedDecoder yields them for noise (empty messages skipped), without the exception.
 */
export class NoiseFraming {
  readonly buffer: Uint8ArrayList

  /** `held`: bytes an earlier decoder had buffered, which come first. */
  constructor(held = new Uint8ArrayList()) {
    this.buffer = held
  }

  *decode(data: Bytes): Generator<Uint8ArrayList> {
    const buffer = this.buffer
    buffer.append(data)
    if (buffer.byteLength > MAX_BUFFERED_BYTES) {
      throw new Error(`Buffer length limit exceeded - ${buffer.byteLength}/${MAX_BUFFERED_BYTES}`)
    }
    while (buffer.byteLength >= LENGTH_BYTES) {
      const end = LENGTH_BYTES + buffer.getUint16(0)
      if (buffer.byteLength < end) return
      const message = buffer.sublist(LENGTH_BYTES, end)
      buffer.consume(end)
      if (message.byteLength > 0) yield message
    }
  }
}

/** One writev per send: the socket is corked while the connection writes each piece. */
export function corkSends(conn: Pick<TcpMessageStream, 'socket' | 'sendData'>): void {
  const sendData = conn.sendData.bind(conn)
  const socket = conn.socket
  conn.sendData = (data) => {
    socket.cork()
    try {
      return sendData(data)
    } finally {
      socket.uncork()
    }
  }
}

/**
 * Frees each piece of Noise ciphertext (noise-crypto.ts) as soon as the socket has written it,
 * instead of at V8's next full GC (see `releaseCiphertext` for why). The TCP connection writes
 * every piece whole with `socket.write(piece)` and keeps no reference once the socket has it;
 * the socket's callback runs once the kernel has taken the bytes. A write that fails is left to
 * the GC. Other writes pass through unchanged.
 */
export function releaseWhenWritten(socket: Pick<Socket, 'write'>): void {
  const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (rest.length > 0 || !(chunk instanceof Uint8Array) || !isOwnCiphertext(chunk))
      return write(chunk, ...rest)
    return write(chunk, (err?: Error | null) => {
      if (err == null) releaseCiphertext(chunk)
    })
  }) as Socket['write']
}

/**
 * Noise hands the stream below a batch only once that stream has sent everything it was given
 * before, and at most `NOISE_SEND_BATCH_BYTES` at a time (see 3. above). Noise's queue resumes on
 * the 'drain' of the stream below, whose own queue runs first (its listener is older, and both
 * run as microtasks), so an emptied queue below is seen on that same drain.
 */
export function sendWhenBelowIsEmpty(
  noiseStream: Pick<NoiseMessageStream, 'sendData' | 'maxMessageSize'>,
  below: { readonly writeBufferLength: number },
): void {
  const sendData = noiseStream.sendData.bind(noiseStream)
  noiseStream.maxMessageSize = NOISE_SEND_BATCH_BYTES
  noiseStream.sendData = (data) =>
    below.writeBufferLength > 0 ? { sentBytes: 0, canSendMore: false } : sendData(data)
}

function hasWriteQueue(s: unknown): s is { readonly writeBufferLength: number } {
  return typeof (s as { writeBufferLength?: unknown } | undefined)?.writeBufferLength === 'number'
}

function isNoiseMessageStream(s: unknown): s is NoiseMessageStream {
  const o = s as Partial<NoiseMessageStream> | undefined
  return (
    typeof o?.decrypt === 'function' &&
    typeof o.handshake?.decrypt === 'function' &&
    typeof o.decoder?.decode === 'function' &&
    typeof o.sendData === 'function'
  )
}

function isTcpMessageStream(s: unknown): s is TcpMessageStream {
  const o = s as Partial<TcpMessageStream> | undefined
  return (
    o?.socket instanceof Socket && typeof o.sendData === 'function' && typeof o.writeBufferLength === 'number'
  )
}
