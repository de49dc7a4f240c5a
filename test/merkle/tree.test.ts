import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, ProofInvalidError } from '../../src/errors.ts'
import {
  EMPTY_ROOT,
  HASH_SIZE,
  innerNode,
  leafNode,
  MerkleLevels,
  merkleRoot,
  proofLength,
  proveRange,
  rootFromRange,
  StreamingRoot,
  verifyRange,
} from '../../src/merkle/index.ts'

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Deterministic distinct leaf nodes without going through leafNode (keeps the property tests fast). */
function nodesOf(n: number, salt = 0): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => sha(Uint8Array.of(salt, i & 0xff, i >> 8)))
}

function flipped(b: Uint8Array, at: number): Uint8Array {
  const c = b.slice()
  c[at] = c[at]! ^ 0x01
  return c
}

describe('node hashing', () => {
  it('leaf node commits to offset, length and hash with a 0x00 prefix', () => {
    const hash = sha(Uint8Array.of(7))
    const row = new Uint8Array(45)
    row[0] = 0x00
    const view = new DataView(row.buffer)
    view.setBigUint64(1, 5_000_000_000n)
    view.setUint32(9, 1234)
    row.set(hash, 13)
    expect(hex(leafNode({ offset: 5_000_000_000, length: 1234, hash }))).toBe(hex(sha(row)))
    expect(hex(leafNode({ offset: 5_000_000_001, length: 1234, hash }))).not.toBe(hex(sha(row)))
    expect(hex(leafNode({ offset: 5_000_000_000, length: 1235, hash }))).not.toBe(hex(sha(row)))
  })

  it('digests are plain Uint8Arrays, so slice() copies instead of aliasing (Buffer#slice is a view)', () => {
    const [a, b] = nodesOf(2) as [Uint8Array, Uint8Array]
    const root = merkleRoot([a, b])
    expect(Object.getPrototypeOf(root)).toBe(Uint8Array.prototype)
    expect(Object.getPrototypeOf(leafNode({ offset: 0, length: 1, hash: a }))).toBe(Uint8Array.prototype)
    const copy = root.slice()
    copy[0] = copy[0]! ^ 1
    expect(copy[0]).not.toBe(root[0])
  })

  it('inner node and empty root are domain separated', () => {
    const [a, b] = nodesOf(2) as [Uint8Array, Uint8Array]
    expect(hex(innerNode(a, b))).toBe(hex(sha(Uint8Array.of(1), a, b)))
    expect(hex(EMPTY_ROOT)).toBe(hex(sha(Uint8Array.of(2))))
    expect(hex(merkleRoot([]))).toBe(hex(EMPTY_ROOT))
    merkleRoot([]).fill(0) // callers get a copy: the shared constant survives
    new StreamingRoot().finish().fill(0)
    expect(hex(EMPTY_ROOT)).toBe(hex(sha(Uint8Array.of(2))))
  })

  it('rejects malformed inputs with InvalidArgumentError', () => {
    const h = new Uint8Array(32)
    expect(() => leafNode({ offset: -1, length: 1, hash: h })).toThrow(InvalidArgumentError)
    expect(() => leafNode({ offset: 2 ** 53, length: 1, hash: h })).toThrow(InvalidArgumentError)
    expect(() => leafNode({ offset: 0, length: 2 ** 32, hash: h })).toThrow(InvalidArgumentError)
    expect(() => leafNode({ offset: 0, length: 1, hash: new Uint8Array(31) })).toThrow(InvalidArgumentError)
    expect(() => innerNode(h, new Uint8Array(33))).toThrow(InvalidArgumentError)
    expect(() => merkleRoot([new Uint8Array(5)])).toThrow(InvalidArgumentError)
    expect(() => new StreamingRoot().push(new Uint8Array(31))).toThrow(InvalidArgumentError)
  })
})

describe('tree shape', () => {
  it('promotes the odd node instead of duplicating it', () => {
    const [a, b, c] = nodesOf(3) as [Uint8Array, Uint8Array, Uint8Array]
    expect(hex(merkleRoot([a, b, c]))).toBe(hex(innerNode(innerNode(a, b), c)))
    expect(hex(merkleRoot([a]))).toBe(hex(a))
    // Bitcoin-style duplication would make [a,b,c] and [a,b,c,c] collide.
    expect(hex(merkleRoot([a, b, c, c]))).not.toBe(hex(merkleRoot([a, b, c])))
  })

  it('StreamingRoot equals the level-by-level build (MerkleLevels) for every n up to 130; finish() keeps state', () => {
    const nodes = nodesOf(130)
    const s = new StreamingRoot()
    expect(hex(s.finish())).toBe(hex(EMPTY_ROOT))
    for (let n = 1; n <= nodes.length; n++) {
      s.push(nodes[n - 1]!)
      expect(hex(s.finish()), `n=${n}`).toBe(hex(MerkleLevels.fromNodes(nodes.slice(0, n)).root))
    }
    expect(s.count).toBe(130)
  })

  it('StreamingRoot holds one pending subtree per set bit of the count, never more, at any leaf count', () => {
    // What keeps indexing memory flat: a 1 TiB file at 1 MiB chunks (2^20 leaves) holds at most 21.
    const node = nodesOf(1)[0]!
    const s = new StreamingRoot()
    let most = 0
    for (let n = 1; n <= 200_000; n++) {
      s.push(node)
      const bits = n.toString(2).replaceAll('0', '').length
      if (s.pending !== bits) throw new Error(`n=${n}: ${s.pending} pending, expected ${bits}`)
      most = Math.max(most, s.pending)
    }
    expect(most).toBeLessThanOrEqual(Math.floor(Math.log2(200_000)) + 1)
  })

  it('page-root equivalence: root over leaves == root over aligned page roots, P in {1,2,4,8}', () => {
    const all = nodesOf(300, 1)
    const counts = [...Array.from({ length: 50 }, (_, i) => i), 63, 64, 65, 127, 128, 129, 255, 256, 257, 300]
    const failures: string[] = []
    for (const n of counts) {
      const nodes = all.slice(0, n)
      const root = hex(merkleRoot(nodes))
      for (const P of [1, 2, 4, 8]) {
        const pageRoots: Uint8Array[] = []
        for (let i = 0; i < n; i += P) pageRoots.push(merkleRoot(nodes.slice(i, i + P)))
        if (pageRoots.length !== Math.ceil(n / P)) failures.push(`count n=${n} P=${P}`)
        if (hex(merkleRoot(pageRoots)) !== root) failures.push(`root n=${n} P=${P}`)
        // And a page is provable from the page-root level alone.
        const levels = MerkleLevels.fromNodes(pageRoots)
        for (let p = 0; p < pageRoots.length; p++) {
          const page = merkleRoot(nodes.slice(p * P, (p + 1) * P))
          const got = rootFromRange(pageRoots.length, p, [page], levels.proveRange(p, p + 1))
          if (hex(got) !== root) failures.push(`proof n=${n} P=${P} page=${p}`)
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('the equivalence fails for a non-power-of-two page size (so the power-of-two rule matters)', () => {
    const nodes = nodesOf(9)
    const pageRoots = [0, 3, 6].map((i) => merkleRoot(nodes.slice(i, i + 3)))
    expect(hex(merkleRoot(pageRoots))).not.toBe(hex(merkleRoot(nodes)))
  })
})

describe('range proofs', () => {
  it('every range of every tree up to 16 leaves verifies, and every flipped byte fails', () => {
    const failures: string[] = []
    const check = (ok: boolean, what: string) => {
      if (!ok) failures.push(what)
    }
    for (let n = 1; n <= 16; n++) {
      const nodes = nodesOf(n, 2)
      const levels = MerkleLevels.fromNodes(nodes)
      const root = merkleRoot(nodes)
      check(hex(levels.root) === hex(root), `levels root n=${n}`)
      for (let s = 0; s < n; s++) {
        for (let e = s + 1; e <= n; e++) {
          const at = `n=${n} [${s},${e})`
          const range = nodes.slice(s, e)
          const proof = levels.proveRange(s, e)
          check(proof.map(hex).join() === proveRange(nodes, s, e).map(hex).join(), `proveRange ${at}`)
          check(proof.length === proofLength(n, s, e), `proofLength ${at}`)
          check(verifyRange(root, n, s, range, proof), `verify ${at}`)
          // A flipped bit in every node: first and last byte keeps this fast but real.
          for (const b of [0, HASH_SIZE - 1]) {
            range.forEach((_, k) => {
              const bad = range.slice()
              bad[k] = flipped(range[k]!, b)
              check(!verifyRange(root, n, s, bad, proof), `flipped range node ${k} ${at}`)
            })
            proof.forEach((_, k) => {
              const bad = proof.slice()
              bad[k] = flipped(proof[k]!, b)
              check(!verifyRange(root, n, s, range, bad), `flipped proof node ${k} ${at}`)
            })
          }
          check(!verifyRange(flipped(root, 5), n, s, range, proof), `flipped root ${at}`)
          // Wrong start: the same nodes claimed elsewhere.
          for (let s2 = 0; s2 < n; s2++) {
            if (s2 !== s) check(!verifyRange(root, n, s2, range, proof), `start ${s2} ${at}`)
          }
          // Wrong leaf count. Only a range that reaches the last leaf pins the count: a range
          // left of it sees the right side as opaque nodes (the header commits the count).
          if (e === n) {
            for (const m of [n - 1, n + 1, n + 2, 2 * n]) {
              if (m > 0) check(!verifyRange(root, m, s, range, proof), `leafCount ${m} ${at}`)
            }
          }
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('proofs are O(log n), not O(range)', () => {
    const n = 1000
    const nodes = nodesOf(n, 3)
    const bound = 2 * Math.ceil(Math.log2(n))
    for (const [s, e] of [
      [1, 999],
      [0, 1000],
      [3, 4],
      [511, 513],
      [17, 900],
    ] as const) {
      const proof = proveRange(nodes, s, e)
      expect(proof.length).toBeLessThanOrEqual(bound)
      expect(verifyRange(merkleRoot(nodes), n, s, nodes.slice(s, e), proof)).toBe(true)
    }
    expect(proveRange(nodes, 0, 1000)).toEqual([])
  })

  it('wrong proof length, oversized ranges and malformed proof nodes throw ProofInvalidError', () => {
    const nodes = nodesOf(9)
    const proof = proveRange(nodes, 2, 3)
    expect(() => rootFromRange(9, 2, [nodes[2]!], proof.slice(1))).toThrow(ProofInvalidError)
    expect(() => rootFromRange(9, 2, [nodes[2]!], [...proof, nodes[0]!])).toThrow(ProofInvalidError)
    expect(() => rootFromRange(9, 8, nodes.slice(8, 9).concat(nodes[0]!), [])).toThrow(ProofInvalidError)
    expect(() => rootFromRange(9, 9, [nodes[0]!], [])).toThrow(ProofInvalidError)
    expect(() => rootFromRange(0, 0, [nodes[0]!], [])).toThrow(ProofInvalidError)
    const short = proof.slice()
    short[0] = short[0]!.subarray(0, 31)
    expect(() => rootFromRange(9, 2, [nodes[2]!], short)).toThrow(ProofInvalidError)
    expect(verifyRange(merkleRoot(nodes), 9, 2, [nodes[2]!], short)).toBe(false)
  })

  it('caller mistakes throw InvalidArgumentError', () => {
    const nodes = nodesOf(4)
    expect(() => proveRange(nodes, 2, 2)).toThrow(InvalidArgumentError)
    expect(() => proveRange(nodes, 3, 5)).toThrow(InvalidArgumentError)
    expect(() => proveRange(nodes, -1, 1)).toThrow(InvalidArgumentError)
    expect(() => proveRange([], 0, 1)).toThrow(InvalidArgumentError)
    expect(() => rootFromRange(4, 0, [], [])).toThrow(InvalidArgumentError)
    expect(() => rootFromRange(4, 1.5, [nodes[0]!], [])).toThrow(InvalidArgumentError)
    expect(() => rootFromRange(4, 0, [new Uint8Array(3)], [])).toThrow(InvalidArgumentError)
    expect(() => new MerkleLevels(new Uint8Array(33))).toThrow(InvalidArgumentError)
  })
})
