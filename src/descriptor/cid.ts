/**
 * Text form of a content id: "b" + lowercase RFC 4648 base32 without padding
 * (the multibase convention for base32), 53 characters for a 32-byte id.
 * Parsing is strict: prefix, length, alphabet and zero trailing bits, so
 * every id has exactly one spelling.
 */
import { InvalidArgumentError } from '../errors.ts'
import { HASH_SIZE } from '../merkle/hash.ts'

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const PREFIX = 'b'
export const CID_STRING_LENGTH = PREFIX.length + Math.ceil((HASH_SIZE * 8) / 5)

const VALUES = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]))

export function cidToString(cid: Uint8Array): string {
  if (cid.length !== HASH_SIZE) throw new InvalidArgumentError(`a content id is ${HASH_SIZE} bytes`)
  let out = PREFIX
  let bits = 0
  let acc = 0
  for (const byte of cid) {
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

export function cidFromString(text: string): Uint8Array {
  if (typeof text !== 'string' || text.length !== CID_STRING_LENGTH || !text.startsWith(PREFIX)) {
    throw new InvalidArgumentError(
      `a content id is "${PREFIX}" followed by ${CID_STRING_LENGTH - 1} base32 characters`,
    )
  }
  const out = new Uint8Array(HASH_SIZE)
  let bits = 0
  let acc = 0
  let n = 0
  for (let i = PREFIX.length; i < text.length; i++) {
    const v = VALUES.get(text[i]!)
    if (v === undefined)
      throw new InvalidArgumentError(`content id has a character outside base32: "${text[i]}"`)
    acc = (acc << 5) | v
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[n++] = (acc >>> bits) & 0xff
    }
    acc &= (1 << bits) - 1
  }
  if (acc !== 0) throw new InvalidArgumentError('content id is not canonical (non-zero trailing bits)')
  return out
}
