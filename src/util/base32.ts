/**
 * Lowercase RFC 4648 base32 without padding, strict: only the alphabet, and
 * zero trailing bits, so every byte string has exactly one spelling. Errors
 * are plain `Error`s with `what` named; callers wrap them in their own type.
 */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const VALUES = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]))

export function base32Encode(bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let acc = 0
  for (const byte of bytes) {
    acc = (acc << 8) | byte
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += ALPHABET[(acc >>> bits) & 31]
    }
    acc &= (1 << bits) - 1
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31]
  return out
}

export class Base32Error extends Error {}

export function base32Decode(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8))
  let bits = 0
  let acc = 0
  let n = 0
  for (const ch of text) {
    const v = VALUES.get(ch)
    if (v === undefined) throw new Base32Error(`"${ch}" is not a base32 character`)
    acc = (acc << 5) | v
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[n++] = (acc >>> bits) & 0xff
    }
    acc &= (1 << bits) - 1
  }
  if (acc !== 0)
    throw new Base32Error('a character is missing or extra (its length does not end on whole bytes)')
  return out
}
