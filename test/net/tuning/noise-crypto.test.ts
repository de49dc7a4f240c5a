import { randomBytes } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { noiseCrypto } from '../../../src/net/tuning/noise-crypto.ts'

type Bytes = Uint8Array | { subarray(): Uint8Array }
const flat = (b: Bytes): Buffer => Buffer.from(b instanceof Uint8Array ? b : b.subarray())
/** The same bytes as a list of three pieces, as noise hands over a message split across reads. */
const split = (b: Uint8Array): Uint8ArrayList =>
  new Uint8ArrayList(
    b.subarray(0, b.length >> 2),
    b.subarray(b.length >> 2, b.length >> 1),
    b.subarray(b.length >> 1),
  )

const ours = {
  enc: (p: Uint8Array | Uint8ArrayList, n: Uint8Array, ad: Uint8Array, k: Uint8Array) =>
    flat(noiseCrypto.chaCha20Poly1305Encrypt(p as never, n, ad, k)),
  dec: (c: Uint8Array | Uint8ArrayList, n: Uint8Array, ad: Uint8Array, k: Uint8Array) =>
    flat(noiseCrypto.chaCha20Poly1305Decrypt(c as never, n, ad, k)),
}
const stock = {
  enc: (p: Uint8Array, n: Uint8Array, ad: Uint8Array, k: Uint8Array) =>
    flat(defaultCrypto.chaCha20Poly1305Encrypt(p, n, ad, k)),
  dec: (c: Uint8Array, n: Uint8Array, ad: Uint8Array, k: Uint8Array) =>
    flat(defaultCrypto.chaCha20Poly1305Decrypt(c, n, ad, k)),
}

function nonce(n: number): Uint8Array {
  const b = new Uint8Array(12)
  new DataView(b.buffer).setBigUint64(4, BigInt(n), true)
  return b
}

describe('noise ChaCha20-Poly1305 with cached KeyObjects', () => {
  const k = randomBytes(32)
  const ad = randomBytes(32)

  it.each([0, 1, 1199, 1200, 5000, 65_519])(
    '%i bytes: the same ciphertext as the stock implementation, and each opens the other',
    (size) => {
      const plain = randomBytes(size)
      const n = nonce(size + 7)
      const mine = ours.enc(plain, n, ad, k)
      expect(mine.equals(stock.enc(plain, n, ad, k))).toBe(true)
      expect(stock.dec(mine, n, ad, k).equals(plain)).toBe(true)
      expect(ours.dec(mine, n, ad, k).equals(plain)).toBe(true)
      if (size >= 4) {
        // Split across reads (a list), on either side.
        expect(ours.enc(split(plain), n, ad, k).equals(mine)).toBe(true)
        expect(ours.dec(split(mine), n, ad, k).equals(plain)).toBe(true)
      }
    },
  )

  it('refuses a forged message: flipped ciphertext, flipped tag, wrong nonce', () => {
    const plain = randomBytes(40_000)
    const sealed = ours.enc(plain, nonce(1), ad, k)
    const body = Buffer.from(sealed)
    body[100]! ^= 1
    expect(() => ours.dec(body, nonce(1), ad, k)).toThrow()
    const tag = Buffer.from(sealed)
    tag[tag.length - 1]! ^= 1
    expect(() => ours.dec(split(tag), nonce(1), ad, k)).toThrow()
    expect(() => ours.dec(sealed, nonce(2), ad, k)).toThrow()
  })

  it('keeps keys apart: two sessions interleaved, and a key array changed in place', () => {
    const a = randomBytes(32)
    const b = randomBytes(32)
    const plain = randomBytes(8000)
    for (let i = 0; i < 3; i++) {
      expect(ours.enc(plain, nonce(i), ad, a).equals(stock.enc(plain, nonce(i), ad, a))).toBe(true)
      expect(ours.enc(plain, nonce(i), ad, b).equals(stock.enc(plain, nonce(i), ad, b))).toBe(true)
    }
    const reused = Uint8Array.from(a)
    ours.enc(plain, nonce(9), ad, reused)
    reused.set(b)
    expect(ours.enc(plain, nonce(9), ad, reused).equals(stock.enc(plain, nonce(9), ad, b))).toBe(true)
  })
})
