/**
 * haul's Merkle tree over a descriptor's leaf table.
 *
 * Rules (the Python generator in test/vectors/gen_vectors.py is an independent
 * implementation of exactly these):
 * - chunk hash  = SHA-256(plain chunk bytes)
 * - leaf node   = SHA-256(0x00 || offset u64 BE || length u32 BE || chunkHash)
 *   The tree commits to the whole leaf-table row, so a peer's offsets and
 *   lengths are provable, not only its chunk hashes.
 * - inner node  = SHA-256(0x01 || left || right)
 * - Levels are built left to right in pairs. An odd node at the end of a level is
 *   PROMOTED unchanged to the next level; it is never paired with itself, so two
 *   different leaf lists cannot share a root the way Bitcoin's duplicated tail
 *   did (CVE-2012-2459).
 * - 0 leaves: root = EMPTY_ROOT = SHA-256(0x02). 1 leaf: root = that leaf node.
 * The shape is a function of the leaf count alone (it equals RFC 6962's: the
 * left subtree holds the largest power of two strictly below n), so a root is
 * meaningful together with its leaf count, which the descriptor header commits.
 *
 * Page roots. Node i of level j covers leaves [i*2^j, min((i+1)*2^j, n)), and
 * promotion keeps that true for the partial last node. So for a page size
 * P = 2^k, level k is exactly the list of "page roots" (root of each aligned
 * block of P leaves, the last block possibly partial), and
 *   merkleRoot(leaves) === merkleRoot(pageRoots).
 * A server keeps only the page-root level (n/P hashes) in memory and proves a
 * whole page with proveRange over that level; the receiver recomputes the page
 * root from the page's rows and checks it with rootFromRange.
 *
 * Range proofs. For a range [start, end) the proof is the list of sibling nodes
 * needed to rebuild the root, in this order: level by level from the leaves up;
 * within a level, the left sibling (present when the range's left edge is odd)
 * before the right sibling (present when the range's right edge is odd and not
 * the level's last node, which would be promoted instead). At most 2 per level,
 * so a proof is O(log n) whatever the range size. Its length is a function of
 * (leafCount, start, end) alone: see proofLength.
 */
import { InvalidArgumentError, ProofInvalidError } from '../errors.ts'
import { bytesEqual, EMPTY_ROOT, HASH_SIZE, innerNode } from './hash.ts'

/** Root of the tree whose leaf level is `nodes`. The 1-node case returns that node itself. */
export function merkleRoot(nodes: readonly Uint8Array[]): Uint8Array {
  if (nodes.length === 0) return EMPTY_ROOT.slice()
  for (const n of nodes) {
    if (n.length !== HASH_SIZE)
      throw new InvalidArgumentError(`nodes must be ${HASH_SIZE} bytes, got ${n.length}`)
  }
  if (nodes.length === 1) return nodes[0]!
  // Same tree as pairing level by level (see StreamingRoot), without building whole levels.
  const s = new StreamingRoot()
  for (const n of nodes) s.push(n)
  return s.finish()
}

function nextLevel(level: readonly Uint8Array[]): Uint8Array[] {
  const next: Uint8Array[] = []
  for (let i = 0; i < level.length; i += 2) {
    next.push(i + 1 < level.length ? innerNode(level[i]!, level[i + 1]!) : level[i]!)
  }
  return next
}

/**
 * Root of a stream of leaf nodes in O(log n) memory: a stack of perfect
 * subtrees, one per set bit of the count. finish() folds them right to left,
 * which is the promotion rule seen from the top, and leaves the state intact so
 * more nodes may still be pushed.
 */
export class StreamingRoot {
  #count = 0
  // #stack[i] is a perfect subtree of 2^#heights[i] leaves; heights strictly decrease.
  readonly #stack: Uint8Array[] = []
  readonly #heights: number[] = []

  push(node: Uint8Array): void {
    if (node.length !== HASH_SIZE) {
      throw new InvalidArgumentError(`a node is ${HASH_SIZE} bytes, got ${node.length}`)
    }
    let acc = node
    let height = 0
    while (this.#heights.length > 0 && this.#heights[this.#heights.length - 1] === height) {
      this.#heights.pop()
      acc = innerNode(this.#stack.pop()!, acc)
      height++
    }
    this.#stack.push(acc)
    this.#heights.push(height)
    this.#count++
  }

  get count(): number {
    return this.#count
  }

  /** Subtree roots held: one per set bit of `count`, so at most log2(count) + 1 (53 for any safe count). */
  get pending(): number {
    return this.#stack.length
  }

  finish(): Uint8Array {
    if (this.#stack.length === 0) return EMPTY_ROOT.slice()
    let acc = this.#stack[this.#stack.length - 1]!
    for (let i = this.#stack.length - 2; i >= 0; i--) acc = innerNode(this.#stack[i]!, acc)
    return acc
  }
}

function checkRange(leafCount: number, start: number, end: number): void {
  if (!Number.isSafeInteger(leafCount) || leafCount < 0) {
    throw new InvalidArgumentError(`leafCount must be a non-negative integer, got ${leafCount}`)
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
    throw new InvalidArgumentError(`range must be non-empty integers start < end, got [${start}, ${end})`)
  }
}

/** Number of proof nodes for range [start, end) of a tree of leafCount leaves. */
export function proofLength(leafCount: number, start: number, end: number): number {
  checkRange(leafCount, start, end)
  if (end > leafCount) {
    throw new InvalidArgumentError(`range [${start}, ${end}) is outside a tree of ${leafCount} leaves`)
  }
  let length = 0
  for (let c = leafCount, s = start, e = end; c > 1; c = Math.ceil(c / 2)) {
    if (s % 2 === 1) length++
    if (e % 2 === 1 && e < c) length++
    s = Math.floor(s / 2)
    e = Math.ceil(e / 2)
  }
  return length
}

/**
 * All levels of a tree, each stored flat (count * 32 bytes) so that a big level
 * costs its bytes and not one object per node. A server keeps one of these over
 * its page roots: about 2 * pages * 32 bytes, and O(log n) work per proof.
 */
export class MerkleLevels {
  readonly leafCount: number
  readonly #levels: Uint8Array[]

  /** `flat` = the leaf-level nodes concatenated; it is kept (not copied) as level 0. */
  constructor(flat: Uint8Array) {
    if (flat.length % HASH_SIZE !== 0) {
      throw new InvalidArgumentError(`flat node list must be a multiple of ${HASH_SIZE} bytes`)
    }
    this.leafCount = flat.length / HASH_SIZE
    // A plain view: slice() on a Buffer would alias instead of copy.
    const plain = new Uint8Array(flat.buffer, flat.byteOffset, flat.length)
    this.#levels = [plain]
    let level = plain
    let count = this.leafCount
    while (count > 1) {
      const nextCount = Math.ceil(count / 2)
      const next = new Uint8Array(nextCount * HASH_SIZE)
      for (let i = 0; i < nextCount; i++) {
        const l = 2 * i
        const node = l + 1 < count ? innerNode(nodeAt(level, l), nodeAt(level, l + 1)) : nodeAt(level, l) // promoted
        next.set(node, i * HASH_SIZE)
      }
      this.#levels.push(next)
      level = next
      count = nextCount
    }
  }

  static fromNodes(nodes: readonly Uint8Array[]): MerkleLevels {
    const flat = new Uint8Array(nodes.length * HASH_SIZE)
    nodes.forEach((n, i) => {
      if (n.length !== HASH_SIZE) throw new InvalidArgumentError(`node ${i} is not ${HASH_SIZE} bytes`)
      flat.set(n, i * HASH_SIZE)
    })
    return new MerkleLevels(flat)
  }

  get root(): Uint8Array {
    if (this.leafCount === 0) return EMPTY_ROOT.slice()
    return nodeAt(this.#levels[this.#levels.length - 1]!, 0).slice()
  }

  /** Bytes held by all levels. */
  get byteLength(): number {
    return this.#levels.reduce((sum, l) => sum + l.length, 0)
  }

  /** Copy of node `index` of the leaf level. */
  leaf(index: number): Uint8Array {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.leafCount) {
      throw new InvalidArgumentError(`leaf ${index} is outside a tree of ${this.leafCount} leaves`)
    }
    return nodeAt(this.#levels[0]!, index).slice()
  }

  /** The proof for [start, end), see the file comment for the order. Each node is a copy. */
  proveRange(start: number, end: number): Uint8Array[] {
    proofLength(this.leafCount, start, end)
    const proof: Uint8Array[] = []
    let s = start
    let e = end
    for (let j = 0, c = this.leafCount; c > 1; j++, c = Math.ceil(c / 2)) {
      const level = this.#levels[j]!
      if (s % 2 === 1) proof.push(nodeAt(level, s - 1).slice())
      if (e % 2 === 1 && e < c) proof.push(nodeAt(level, e).slice())
      s = Math.floor(s / 2)
      e = Math.ceil(e / 2)
    }
    return proof
  }
}

function nodeAt(level: Uint8Array, index: number): Uint8Array {
  return level.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE)
}

/** Proof for leaves [start, end) of the tree whose leaf level is `nodes`. Builds the whole tree: O(n). */
export function proveRange(nodes: readonly Uint8Array[], start: number, end: number): Uint8Array[] {
  proofLength(nodes.length, start, end)
  return MerkleLevels.fromNodes(nodes).proveRange(start, end)
}

/**
 * Rebuilds the root from the nodes of [start, start + rangeNodes.length) and
 * their proof. Throws ProofInvalidError when the claim cannot be right whatever
 * the hashes (range outside the tree, wrong proof length, a proof node that is
 * not 32 bytes); InvalidArgumentError for a caller's mistake (empty range,
 * malformed range node). Comparing the result with a trusted root is the
 * caller's job, or use verifyRange.
 */
export function rootFromRange(
  leafCount: number,
  start: number,
  rangeNodes: readonly Uint8Array[],
  proof: readonly Uint8Array[],
): Uint8Array {
  const end = start + rangeNodes.length
  checkRange(leafCount, start, end)
  if (end > leafCount) {
    throw new ProofInvalidError(`range [${start}, ${end}) is outside a tree of ${leafCount} leaves`)
  }
  for (const n of rangeNodes) {
    if (n.length !== HASH_SIZE) throw new InvalidArgumentError(`range nodes must be ${HASH_SIZE} bytes`)
  }
  const expected = proofLength(leafCount, start, end)
  if (proof.length !== expected) {
    throw new ProofInvalidError(`proof has ${proof.length} nodes, a range of this tree needs ${expected}`)
  }
  for (const n of proof) {
    if (n.length !== HASH_SIZE) throw new ProofInvalidError(`proof nodes must be ${HASH_SIZE} bytes`)
  }
  let known: Uint8Array[] = rangeNodes.slice()
  let k = 0
  let s = start
  let e = end
  for (let c = leafCount; c > 1; c = Math.ceil(c / 2)) {
    if (s % 2 === 1) known.unshift(proof[k++]!)
    if (e % 2 === 1 && e < c) known.push(proof[k++]!)
    // known now starts at an even index and ends at an even index or at the level's end.
    known = nextLevel(known)
    s = Math.floor(s / 2)
    e = Math.ceil(e / 2)
  }
  return known[0]!
}

/**
 * True when [start, start + rangeNodes.length) with `proof` rebuilds `root` for
 * a tree of leafCount leaves; false for any claim rootFromRange rejects with
 * ProofInvalidError. Caller mistakes (empty range, negative start) still throw.
 */
export function verifyRange(
  root: Uint8Array,
  leafCount: number,
  start: number,
  rangeNodes: readonly Uint8Array[],
  proof: readonly Uint8Array[],
): boolean {
  try {
    return bytesEqual(rootFromRange(leafCount, start, rangeNodes, proof), root)
  } catch (err) {
    if (err instanceof ProofInvalidError) return false
    throw err
  }
}
