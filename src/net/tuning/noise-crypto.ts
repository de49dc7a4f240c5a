/**
 * Noise's ChaCha20-Poly1305 for the transport messages, with the session key kept as a KeyObject.
 *
 * The stock Node implementation (`@chainsafe/libp2p-noise/crypto`) hands the raw 32-byte key to
 * `createCipheriv` for every message. Node then checks whether that key is a KeyObject the slow
 * way, once per 64 KiB message: in a 1 GiB transfer's CPU profile that check and the key setup
 * took ~0.9 s on the receiver and ~0.7 s on the sender, next to ~0.8-0.9 s for the cipher itself.
 * Here each key becomes a KeyObject once. Encryption also returns the ciphertext and tag as a
 * list instead of concatenating them, which copied every message once more.
 *
 * Everything else (handshake hashing, X25519, HKDF, the WebAssembly cipher for messages under
 * 1,200 bytes) is the stock implementation, and the bytes on the wire are the same.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { bytesEqual } from '../../merkle/hash.ts'

const ALGORITHM = 'chacha20-poly1305'
const TAG_BYTES = 16
/** Below this the stock WebAssembly cipher is faster than a Node cipher object (the library's own cut). */
const SMALL_MESSAGE = 1200

interface CachedKey {
  readonly bytes: Uint8Array
  readonly key: KeyObject
}

/**
 * Keys by the array noise passes (one per direction of a session, for its whole life). The
 * bytes are compared too, so a key array changed in place can never be used with a stale key.
 */
const keys = new WeakMap<Uint8Array, CachedKey>()

function keyObjectFor(k: Uint8Array): KeyObject {
  const cached = keys.get(k)
  if (cached !== undefined && bytesEqual(cached.bytes, k)) return cached.key
  const key = createSecretKey(k)
  keys.set(k, { bytes: k.slice(), key })
  return key
}

type Encrypt = ICryptoInterface['chaCha20Poly1305Encrypt']
type Decrypt = ICryptoInterface['chaCha20Poly1305Decrypt']
/** noise's own uint8arraylist (2.x; ours is 3.x). */
type NoiseList = Exclude<ReturnType<Encrypt>, Uint8Array>

/**
 * Both versions mark a list with the same global symbol and keep its pieces in `bufs`, which is
 * all noise's `append` reads: only the type declarations differ.
 */
function asNoiseList(list: Uint8ArrayList): NoiseList {
  return list as unknown as NoiseList
}

/**
 * The ArrayBuffers of ciphertext `encrypt` made, each a whole buffer nobody else has: the TCP
 * connection frees them as soon as the kernel has taken them (`releaseCiphertext`).
 *
 * Why: every 64 KiB Noise message is a fresh buffer from the C allocator. Many wait in the
 * socket's queue across a few scavenges, so they die in the old generation, and V8 frees them
 * only at a full GC, which it starts once external memory has grown ~64 MB. A sender serving
 * 20 receivers at once held up to 70 MB of ArrayBuffers (21 MB with this), and glibc keeps its
 * heap at that high-water mark after the receivers leave (docs/LIMITS.md, known limits). Freed
 * at once, the memory goes to the next message.
 */
const ownCiphertext = new WeakSet<ArrayBuffer>()

/** `part`, remembered as ciphertext to free once written when it is a whole ArrayBuffer of its own. */
function owned(part: Uint8Array): Uint8Array {
  const buf = wholeBuffer(part)
  if (buf !== undefined && buf.byteLength > 0) ownCiphertext.add(buf)
  return part
}

/** The ArrayBuffer `piece` spans whole (its memory is the piece's alone to free), or undefined. */
function wholeBuffer(piece: Uint8Array): ArrayBuffer | undefined {
  const buf = piece.buffer
  return buf instanceof ArrayBuffer && piece.byteOffset === 0 && piece.byteLength === buf.byteLength
    ? buf
    : undefined
}

/** True for a whole buffer of ciphertext made by `encrypt` and not yet released. */
export function isOwnCiphertext(piece: Uint8Array): boolean {
  const buf = wholeBuffer(piece)
  return buf !== undefined && ownCiphertext.has(buf)
}

/**
 * Frees the memory of a piece of ciphertext `encrypt` made, now instead of at a later GC: for the
 * TCP connection, once the kernel has taken it (it is then sent, and nobody reads it again). The
 * piece is left detached (0 bytes). Anything else is left alone; returns whether it was freed.
 */
export function releaseCiphertext(piece: Uint8Array): boolean {
  const buf = wholeBuffer(piece)
  if (buf === undefined || !ownCiphertext.delete(buf)) return false
  // transfer(0) detaches the buffer and frees its memory now.
  buf.transfer(0)
  return true
}

const encrypt: Encrypt = (plaintext, nonce, ad, k) => {
  if (plaintext.byteLength < SMALL_MESSAGE)
    return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
  const cipher = createCipheriv(ALGORITHM, keyObjectFor(k), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const out = new Uint8ArrayList()
  if (plaintext instanceof Uint8Array) out.append(owned(cipher.update(plaintext)))
  else for (const part of plaintext) out.append(owned(cipher.update(part)))
  const last = cipher.final()
  if (last.byteLength > 0) out.append(last)
  out.append(owned(cipher.getAuthTag()))
  return asNoiseList(out)
}

const decrypt: Decrypt = (ciphertext, nonce, ad, k, dst) => {
  if (ciphertext.byteLength < SMALL_MESSAGE) {
    return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
  }
  const textLength = ciphertext.byteLength - TAG_BYTES
  const decipher = createDecipheriv(ALGORITHM, keyObjectFor(k), nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(ad, { plaintextLength: textLength })
  decipher.setAuthTag(ciphertext.subarray(textLength))
  if (ciphertext instanceof Uint8Array) {
    const plain = decipher.update(ciphertext.subarray(0, textLength))
    // final() checks the tag (throws on a forged message); chacha20 leaves nothing for it to add.
    const last = decipher.final()
    return last.byteLength === 0 ? plain : asNoiseList(new Uint8ArrayList(plain, last))
  }
  const out = new Uint8ArrayList()
  for (const part of ciphertext.sublist(0, textLength)) out.append(decipher.update(part))
  const last = decipher.final()
  if (last.byteLength > 0) out.append(last)
  return asNoiseList(out)
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: encrypt,
  chaCha20Poly1305Decrypt: decrypt,
}
