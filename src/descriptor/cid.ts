/**
 * Text form of a content id: "b" + lowercase RFC 4648 base32 without padding
 * (the multibase convention for base32), 53 characters for a 32-byte id.
 * Parsing is strict: prefix, length, alphabet and zero trailing bits, so
 * every id has exactly one spelling.
 */
import { InvalidArgumentError } from '../errors.ts'
import { HASH_SIZE } from '../merkle/hash.ts'
import { base32Decode, base32Encode } from '../util/base32.ts'

const PREFIX = 'b'
export const CID_STRING_LENGTH = PREFIX.length + Math.ceil((HASH_SIZE * 8) / 5)

export function cidToString(cid: Uint8Array): string {
  if (cid.length !== HASH_SIZE) throw new InvalidArgumentError(`a content id is ${HASH_SIZE} bytes`)
  return PREFIX + base32Encode(cid)
}

/** Whether `text` is written as a content id (and not, say, a ticket): parsing may still refuse it. */
export function looksLikeCid(text: string): boolean {
  return text.length === CID_STRING_LENGTH && text.startsWith(PREFIX)
}

export function cidFromString(text: string): Uint8Array {
  if (typeof text !== 'string' || text.length !== CID_STRING_LENGTH || !text.startsWith(PREFIX)) {
    throw new InvalidArgumentError(
      `a content id is "${PREFIX}" followed by ${CID_STRING_LENGTH - 1} base32 characters`,
    )
  }
  try {
    return base32Decode(text.slice(PREFIX.length))
  } catch (err) {
    throw new InvalidArgumentError(`content id: ${(err as Error).message}`)
  }
}
