/**
 * Who may fetch served content. A publish makes a secret (16 random bytes) that its ticket
 * carries; content published with secrets is answered only to requests presenting one of them
 * (the secret rides on each request: src/protocol/messages.ts, "Access"). A public publish has
 * none and is answered to anyone naming its content id, as every publish was before secrets.
 *
 * A prober must not learn whether a peer holds a content id it has no ticket for: a request
 * without the secret, or with a wrong one, is answered exactly as one for content the peer does
 * not publish, and the comparison takes the same time whatever the bytes (timingSafeEqual, and
 * a comparison against a stand-in when the content id is unknown).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { ContentNotFoundError } from '../errors.ts'
import { SECRET_BYTES } from '../protocol/messages.ts'

export { SECRET_BYTES }

/** A fresh capability for one publish. */
export function newSecret(): Uint8Array {
  return new Uint8Array(randomBytes(SECRET_BYTES))
}

/** What an unknown content id is compared against, so that it costs what known content does. */
const STAND_IN: readonly Uint8Array[] = [newSecret()]
const NONE = new Uint8Array(SECRET_BYTES)

/**
 * Whether a request presenting `presented` may have content guarded by `secrets` (undefined:
 * public; empty: no one).
 */
export function admits(
  secrets: readonly Uint8Array[] | undefined,
  presented: Uint8Array | undefined,
): boolean {
  return secrets === undefined || matchesAny(secrets, presented)
}

/** The answer for a content id this peer does not serve (no), after the work a known one costs. */
export function admitsUnknown(presented: Uint8Array | undefined): false {
  matchesAny(STAND_IN, presented)
  return false
}

/** Every secret is compared, none skipped on a match, so the time does not say which one matched. */
function matchesAny(secrets: readonly Uint8Array[], presented: Uint8Array | undefined): boolean {
  const given = presented?.length === SECRET_BYTES ? presented : NONE
  let match = false
  for (const s of secrets) {
    if (s.length === SECRET_BYTES && timingSafeEqual(s, given)) match = true
  }
  return match && given !== NONE
}

/**
 * The one answer for content this peer does not serve to the asker: unknown, or published with a
 * secret the request did not present. The message must not tell the two apart.
 */
export function notFound(): ContentNotFoundError {
  return new ContentNotFoundError(
    'this peer does not publish that content id for this ticket: check the ticket, or ask the sender to publish again',
  )
}
