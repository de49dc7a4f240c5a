import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  chunkHash,
  EMPTY_ROOT,
  leafNode,
  MerkleLevels,
  merkleRoot,
  proveRange,
  rootFromRange,
  StreamingRoot,
  verifyRange,
} from '../../src/merkle/index.ts'

interface Case {
  leafCount: number
  entries: { offset: number; length: number; hash: string }[]
  leafNodes: string[]
  root: string
  proofs: { start: number; end: number; proof: string[] }[]
}
interface Vectors {
  emptyRoot: string
  chunkHashes: { data: string; hash: string }[]
  cases: Case[]
}

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/merkle.json', import.meta.url), 'utf8'),
) as Vectors
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))

describe('Merkle known answers (test/vectors/merkle.json, from gen_vectors.py)', () => {
  it('covers the leaf counts the spec asks for', () => {
    expect(vectors.cases.map((c) => c.leafCount)).toEqual([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100])
  })

  it('empty root and chunk hashes', () => {
    expect(hex(EMPTY_ROOT)).toBe(vectors.emptyRoot)
    for (const v of vectors.chunkHashes) expect(hex(chunkHash(unhex(v.data)))).toBe(v.hash)
  })

  for (const c of vectors.cases) {
    describe(`${c.leafCount} leaves`, () => {
      const nodes = c.entries.map((e) =>
        leafNode({ offset: e.offset, length: e.length, hash: unhex(e.hash) }),
      )

      it('leaf nodes and root match', () => {
        expect(nodes.map(hex)).toEqual(c.leafNodes)
        expect(hex(merkleRoot(nodes))).toBe(c.root)
        const s = new StreamingRoot()
        for (const n of nodes) s.push(n)
        expect(s.count).toBe(c.leafCount)
        expect(hex(s.finish())).toBe(c.root)
        expect(hex(MerkleLevels.fromNodes(nodes).root)).toBe(c.root)
      })

      it('range proofs match byte for byte and verify', () => {
        for (const p of c.proofs) {
          expect(proveRange(nodes, p.start, p.end).map(hex)).toEqual(p.proof)
          const range = nodes.slice(p.start, p.end)
          const proof = p.proof.map(unhex)
          expect(hex(rootFromRange(c.leafCount, p.start, range, proof))).toBe(c.root)
          expect(verifyRange(unhex(c.root), c.leafCount, p.start, range, proof)).toBe(true)
        }
      })
    })
  }
})
