import { createHash } from 'node:crypto'
import { encodeSwarmTicket, type Provider } from '../../src/ticket/multi-ticket.ts'
import { base32Decode, base32Encode } from '../../src/util/base32.ts'

/** A version 2 ticket as older haul wrote it: version 3 without flags, name and checksum. */
export function legacyV2(cid: Uint8Array, providers: readonly Provider[]): Uint8Array {
  const v3 = base32Decode(encodeSwarmTicket({ cid, providers }).slice(5))
  return Uint8Array.from([2, ...v3.subarray(3, v3.length - 4)])
}

/** `haul1` text of raw ticket bytes. */
export function ticketText(bytes: Uint8Array): string {
  return `haul1${base32Encode(bytes)}`
}

/** The body of a version 3 ticket (checksum removed), to change and `seal` again. */
export function v3Body(ticket: string): Uint8Array {
  const bytes = base32Decode(ticket.slice(5))
  return Uint8Array.from(bytes.subarray(0, bytes.length - 4))
}

/** A version 3 ticket's text with a correct checksum over `body`. */
export function seal(body: Uint8Array): string {
  const sum = createHash('sha256').update(body).digest().subarray(0, 4)
  return ticketText(Uint8Array.from([...body, ...sum]))
}
