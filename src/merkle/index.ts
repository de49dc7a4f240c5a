/**
 * haul's SHA-256 Merkle tree: node hashing, roots (in memory and streaming),
 * and range proofs. The rules are in `./tree.ts`.
 *
 * @example
 * ```ts
 * import { leafNode, merkleRoot, proveRange, verifyRange } from './merkle/index.ts'
 * const nodes = entries.map(leafNode)
 * const root = merkleRoot(nodes)
 * const proof = proveRange(nodes, 3, 4)          // leaf 3 alone
 * verifyRange(root, nodes.length, 3, [nodes[3]!], proof) // true
 * ```
 * @packageDocumentation
 */
export {
  bytesEqual,
  chunkHash,
  EMPTY_ROOT,
  HASH_SIZE,
  INNER_PREFIX,
  innerNode,
  LEAF_ENTRY_SIZE,
  LEAF_PREFIX,
  leafNode,
  leafNodeFromRow,
  sha256,
} from './hash.ts'
export {
  MerkleLevels,
  merkleRoot,
  proofLength,
  proveRange,
  rootFromRange,
  StreamingRoot,
  verifyRange,
} from './tree.ts'
