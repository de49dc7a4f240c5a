/**
 * Merkle tree build cost against plain SHA-256, side by side in one run.
 *
 *   npx node bench/merkle.bench.ts            # 16384 leaves
 *   HAUL_BENCH_LEAVES=65536 npx node bench/merkle.bench.ts
 *
 * Reference: as many node:crypto SHA-256 calls over 77-byte inputs as there are
 * leaves. A tree over n leaves hashes 2n - 1 nodes (45/65-byte inputs), so a
 * ratio near 2 means the tree adds nothing beyond its hashing; below 2 means
 * the node hashes are cheaper per call than the reference (see src/merkle/hash.ts).
 */
import { hash } from 'node:crypto'
import { Bench } from 'tinybench'
import { innerNode, leafNode, MerkleLevels, merkleRoot, StreamingRoot } from '../src/merkle/index.ts'
import type { LeafEntry } from '../src/types.ts'

const LEAVES = Number(process.env.HAUL_BENCH_LEAVES ?? 16384)
if (!Number.isSafeInteger(LEAVES) || LEAVES < 1)
  throw new Error('HAUL_BENCH_LEAVES must be a positive integer')

const entries: LeafEntry[] = Array.from({ length: LEAVES }, (_, i) => ({
  offset: i * 1024 * 1024,
  length: 1024 * 1024,
  hash: hash('sha256', `chunk ${i}`, 'buffer'),
}))
const leafNodes = entries.map(leafNode)
const input77 = new Uint8Array(77).fill(1)
const input65 = new Uint8Array(65).fill(2)
const a = leafNodes[0]!
const b = leafNodes[1 % LEAVES]!

const bench = new Bench({ time: 300, iterations: 16, warmupTime: 50, warmupIterations: 2 })
bench
  .add(`reference: ${LEAVES} x node:crypto SHA-256(77 B)`, () => {
    for (let i = 0; i < LEAVES; i++) hash('sha256', input77, 'buffer')
  })
  .add(`merkleRoot: ${LEAVES} leaf entries -> root`, () => {
    merkleRoot(entries.map(leafNode))
  })
  .add(`StreamingRoot: ${LEAVES} leaf entries -> root`, () => {
    const s = new StreamingRoot()
    for (const e of entries) s.push(leafNode(e))
    s.finish()
  })
  .add(`MerkleLevels: ${LEAVES} leaf nodes -> all levels`, () => {
    MerkleLevels.fromNodes(leafNodes)
  })
  .add(`node hash: ${LEAVES} x innerNode (hash-wasm, 65 B)`, () => {
    for (let i = 0; i < LEAVES; i++) innerNode(a, b)
  })
  .add(`node hash alternative: ${LEAVES} x node:crypto SHA-256(65 B)`, () => {
    for (let i = 0; i < LEAVES; i++) hash('sha256', input65, 'buffer')
  })

await bench.run()
console.table(bench.table())

const mean = (i: number): number => {
  const r = bench.tasks[i]!.result
  if (r.state !== 'completed') throw new Error(`task ${bench.tasks[i]!.name} did not complete: ${r.state}`)
  return r.latency.mean
}
const ref = mean(0)
console.log(`merkleRoot / reference          = ${(mean(1) / ref).toFixed(2)} (2n-1 hashes vs n)`)
console.log(`StreamingRoot / reference       = ${(mean(2) / ref).toFixed(2)}`)
console.log(`MerkleLevels / reference        = ${(mean(3) / ref).toFixed(2)} (n-1 hashes vs n)`)
console.log(`node:crypto / hash-wasm (65 B)  = ${(mean(5) / mean(4)).toFixed(2)} (> 1: hash-wasm is faster)`)
