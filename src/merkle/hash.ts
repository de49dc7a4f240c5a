/**
 * The hash primitives of haul's Merkle tree. The tree's rules (node layout,
 * domain separation, odd-node promotion) are documented in `./tree.ts`.
 *
 * Two SHA-256 implementations, each where it is faster:
 * - chunk hashes and other large inputs: node:crypto's one-shot `hash()`
 *   (hardware SHA-256, ~1.5 GB/s here, hash-wasm ~0.23 GB/s);
 * - tree nodes (45/65-byte inputs): one reused hash-wasm SHA-256 instance.
 *   For inputs this small the per-call cost dominates, and crossing into wasm
 *   is cheaper than into node:crypto: 1.4-1.9x per node hash measured side by
 *   side on this machine (bench/merkle.bench.ts prints the ratio). Building or
 *   opening a descriptor of millions of rows is bound by exactly these hashes.
 * Both return plain Uint8Arrays over their own 32-byte ArrayBuffer (never a
 * Buffer, never a pooled slab), so a digest may be moved with a transfer list
 * and slice() copies it.
 */
import { hash } from 'node:crypto'
import { createSHA256 } from 'hash-wasm'
import { InvalidArgumentError } from '../errors.ts'
import type { LeafEntry } from '../types.ts'

export const HASH_SIZE = 32

/** Domain-separation prefixes: the first byte of every hashed node input. */
export const LEAF_PREFIX = 0x00
export const INNER_PREFIX = 0x01
export const EMPTY_PREFIX = 0x02

/** offset u64 BE + length u32 BE + chunk hash. */
export const LEAF_ENTRY_SIZE = 8 + 4 + HASH_SIZE
const LEAF_INPUT_SIZE = 1 + LEAF_ENTRY_SIZE
const INNER_INPUT_SIZE = 1 + 2 * HASH_SIZE
const TWO_POW_32 = 2 ** 32
const MAX_LEAF_LENGTH = TWO_POW_32 - 1

// Scratch inputs, reused: hashing consumes its input synchronously, and a fresh
// 45/65-byte array per node costs a third of the time of hashing millions of rows.
const leafInput = new Uint8Array(LEAF_INPUT_SIZE)
const leafView = new DataView(leafInput.buffer)
leafInput[0] = LEAF_PREFIX
const innerInput = new Uint8Array(INNER_INPUT_SIZE)
innerInput[0] = INNER_PREFIX

/**
 * SHA-256 as a plain Uint8Array. Not a Buffer on purpose: Buffer#slice() is a
 * view, so code that copies a digest with slice() would silently alias it.
 */
export function sha256(bytes: Uint8Array): Uint8Array {
  const b = hash('sha256', bytes, 'buffer')
  return new Uint8Array(b.buffer, b.byteOffset, b.length)
}

// Synchronous use only (init/update/digest in one go), so sharing one instance is safe.
const nodeHasher = await createSHA256()

/** SHA-256 of a short tree-node input; see the file comment for why not node:crypto. */
function nodeSha256(input: Uint8Array): Uint8Array {
  nodeHasher.init()
  nodeHasher.update(input)
  return nodeHasher.digest('binary') as Uint8Array
}

/** SHA-256 of a chunk's plain (uncompressed) bytes. */
export function chunkHash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

/**
 * Hash of one leaf-table row: SHA-256(0x00 || offset u64 BE || length u32 BE || chunkHash).
 * Committing to offset and length (not only to the chunk hash) makes a peer's
 * claims about where a chunk sits provable.
 */
export function leafNode(entry: LeafEntry): Uint8Array {
  const { offset, length, hash: h } = entry
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`leaf offset must be a non-negative safe integer, got ${offset}`)
  }
  if (!Number.isInteger(length) || length < 0 || length > MAX_LEAF_LENGTH) {
    throw new InvalidArgumentError(`leaf length must be a u32, got ${length}`)
  }
  if (h.length !== HASH_SIZE) {
    throw new InvalidArgumentError(`leaf hash must be ${HASH_SIZE} bytes, got ${h.length}`)
  }
  leafView.setUint32(1, Math.floor(offset / TWO_POW_32))
  leafView.setUint32(5, offset >>> 0)
  leafView.setUint32(9, length)
  leafInput.set(h, 13)
  return nodeSha256(leafInput)
}

/** Leaf node of a row already in its 44-byte wire/disk encoding (see descriptor/page.ts). */
export function leafNodeFromRow(row: Uint8Array): Uint8Array {
  if (row.length !== LEAF_ENTRY_SIZE) {
    throw new InvalidArgumentError(`a leaf row is ${LEAF_ENTRY_SIZE} bytes, got ${row.length}`)
  }
  leafInput.set(row, 1)
  return nodeSha256(leafInput)
}

/** SHA-256(0x01 || left || right). */
export function innerNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    throw new InvalidArgumentError(`inner node children must be ${HASH_SIZE} bytes each`)
  }
  innerInput.set(left, 1)
  innerInput.set(right, 1 + HASH_SIZE)
  return nodeSha256(innerInput)
}

/**
 * Root of a tree with no leaves: SHA-256(0x02). Cannot collide with a leaf or inner node.
 * Shared: do not mutate (the tree functions hand out copies).
 */
export const EMPTY_ROOT: Uint8Array = sha256(Uint8Array.of(EMPTY_PREFIX))

/** Constant-time-irrelevant (public data) byte equality for digests. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
