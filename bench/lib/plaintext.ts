import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type {
  ConnectionEncrypter,
  MessageStream,
  PrivateKey,
  SecureConnectionOptions,
  SecuredConnection,
  StreamMessageEvent,
} from '@libp2p/interface'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { Uint8ArrayList } from 'uint8arraylist'

/**
 * BENCHMARK ONLY: an "encrypter" that exchanges public keys in the clear and
 * then passes bytes through untouched, so the bench can show what Noise costs.
 * Not interoperable with @libp2p/plaintext and never used by haul itself.
 */
const PROTOCOL = '/haul-bench-plaintext/1.0.0'
const MAX_KEY_BYTES = 1024

class InsecurePassthrough implements ConnectionEncrypter {
  readonly protocol = PROTOCOL
  readonly #key: PrivateKey

  constructor(key: PrivateKey) {
    this.#key = key
  }

  secureInbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.#exchange(connection, options)
  }

  secureOutbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.#exchange(connection, options)
  }

  async #exchange(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const ours = publicKeyToProtobuf(this.#key.publicKey)
    const header = new Uint8Array(4)
    new DataView(header.buffer).setUint32(0, ours.byteLength)
    const theirs = readPrefixed(connection, options?.signal)
    connection.send(new Uint8ArrayList(header, ours))
    const remoteKey = publicKeyFromProtobuf(await theirs)
    const remotePeer = peerIdFromPublicKey(remoteKey)
    if (options?.remotePeer !== undefined && !options.remotePeer.equals(remotePeer)) {
      throw new Error(`expected peer ${options.remotePeer}, got ${remotePeer}`)
    }
    return { connection, remotePeer }
  }
}

/** Reads one u32-length-prefixed message and pushes any extra bytes back for the muxer. */
function readPrefixed(stream: MessageStream, signal?: AbortSignal): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const buf = new Uint8ArrayList()
    const finish = (err?: Error, value?: Uint8Array): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(value!)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      buf.append(evt.data)
      if (buf.byteLength < 4) return
      const len = buf.getUint32(0)
      if (len > MAX_KEY_BYTES) {
        finish(new Error(`handshake message of ${len} bytes`))
        return
      }
      if (buf.byteLength < 4 + len) return
      const key = buf.subarray(4, 4 + len)
      const rest = buf.sublist(4 + len)
      finish(undefined, key)
      if (rest.byteLength > 0) stream.unshift(rest)
    }
    const onClose = (): void => finish(new Error('connection closed during handshake'))
    const onAbort = (): void => finish(new Error('handshake aborted'))
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

export function insecurePassthrough(): (components: { privateKey: PrivateKey }) => ConnectionEncrypter {
  return (components) => new InsecurePassthrough(components.privateKey)
}
