/**
 * A haul content id as the DHT keys it. kad-dht stores provider records under a CID's
 * multihash, and its peers decode every key as a CID: one whose multihash is SHA-256 (code 0x12)
 * is the only kind a bare multihash decodes as. The content id, a SHA-256 Merkle root
 * (src/merkle/), is that digest. It is not the SHA-256 of the bytes, so the key means nothing
 * outside haul; haul's DHT runs on its own protocol id (src/net/defaults.ts), where no other
 * system's records live.
 */
import { CID } from 'multiformats/cid'
import { create as digestOf } from 'multiformats/hashes/digest'
import { InvalidArgumentError } from '../errors.ts'
import { HASH_SIZE } from '../merkle/hash.ts'

const SHA2_256 = 0x12
const RAW = 0x55

export function contentKey(cid: Uint8Array): CID {
  if (cid.length !== HASH_SIZE) throw new InvalidArgumentError(`a content id is ${HASH_SIZE} bytes`)
  return CID.createV1(RAW, digestOf(SHA2_256, cid))
}
