import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { AbortedError, InvalidArgumentError } from '../errors.ts'

export function parsePeer(peer: string): PeerId {
  try {
    return peerIdFromString(peer)
  } catch (err) {
    throw new InvalidArgumentError(`not a peer id: ${JSON.stringify(peer)}`, { cause: err })
  }
}

/**
 * The peer id an address ends with, if any: the peer's own /p2p/ part comes last (in a relayed
 * address, one before /p2p-circuit names the relay).
 */
export function ownPeerId(ma: Multiaddr): string | undefined {
  const last = ma.getComponents().at(-1)
  return last?.name === 'p2p' ? last.value : undefined
}

/** Every address must be a multiaddr; a trailing /p2p/ part, if present, must name `peerId`; it is appended otherwise. */
export function parseAddrs(peerId: PeerId, addrs: readonly string[]): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    let ma: Multiaddr
    try {
      ma = multiaddr(a)
    } catch (err) {
      throw new InvalidArgumentError(`not a multiaddr: ${JSON.stringify(a)}`, { cause: err })
    }
    const p2p = ownPeerId(ma)
    if (p2p === undefined) ma = ma.encapsulate(`/p2p/${peerId}`)
    else if (p2p !== peerId.toString())
      throw new InvalidArgumentError(`address ${a} belongs to peer ${p2p}, not ${peerId}`)
    out.push(ma)
  }
  return out
}

/** What Noise says when the peer at an address proves another identity than the one dialed. */
const OTHER_IDENTITY = /Payload identity key (\S+) does not match expected remote identity key/

/** The peer id another peer proved at an address dialed for someone else, from a dial's error text. */
export function otherIdentity(why: string): string | undefined {
  return OTHER_IDENTITY.exec(why)?.[1]
}

export function describeDialError(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.map((e) => (e as Error).message).join('; ')
  }
  return (err as Error)?.message ?? String(err)
}

export async function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p
  if (signal.aborted) throw new AbortedError()
  const { promise, reject } = Promise.withResolvers<never>()
  const onAbort = (): void => reject(new AbortedError())
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await Promise.race([p, promise])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
