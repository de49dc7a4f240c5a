/**
 * Encode + decode of chunk frames, against one plain copy of the same bytes (Buffer.concat of
 * the frame's 64 KiB network reads) measured in the same run.
 *
 *   npx node bench/frame.bench.ts [chunkMiB]        # default 1
 *   FRAME_BENCH_MIB=4 FRAME_BENCH_TIME_MS=2000 FRAME_BENCH_ROUNDS=5 npx node bench/frame.bench.ts
 *
 * Cases
 * - reference: Buffer.concat of the 64 KiB reads below: the one join any decoder must do.
 * - parts as encoded: encodeMessage's two parts pushed as they are; the decoder hands back a
 *   view of the payload (zero copy), so this measures framing overhead alone.
 * - 64 KiB reads: the same frame arriving in 65,535-byte pieces, as a noise stream delivers it;
 *   the decoder copies the payload once to join it.
 */

import { Bench } from 'tinybench'
import { FrameDecoder } from '../src/protocol/decoder.ts'
import { encodeMessage } from '../src/protocol/encoder.ts'
import type { ChunkMessage } from '../src/protocol/messages.ts'
import { MiB } from '../src/types.ts'

const chunkMiB = Number(process.argv[2] ?? process.env.FRAME_BENCH_MIB ?? 1)
const timeMs = Number(process.env.FRAME_BENCH_TIME_MS ?? 300)
const rounds = Number(process.env.FRAME_BENCH_ROUNDS ?? 7)
if (!(chunkMiB > 0 && chunkMiB <= 8)) throw new Error('chunk size must be in (0, 8] MiB')
if (!(Number.isInteger(rounds) && rounds >= 1 && timeMs > 0)) throw new Error('bad rounds or time')

const size = Math.round(chunkMiB * MiB)
const payload = new Uint8Array(size)
for (let i = 0; i < size; i++) payload[i] = (i * 2654435761) >>> 24
const msg: ChunkMessage = { type: 'chunk', requestId: 1, index: 7, codec: 'none', rawLength: size, payload }

const [header] = encodeMessage(msg) as [Uint8Array, Uint8Array]
const wire = Buffer.concat([header, payload])
const NOISE_READ = 65_535
const pieces: Uint8Array[] = []
for (let at = 0; at < wire.length; at += NOISE_READ) pieces.push(wire.subarray(at, at + NOISE_READ))

let sink = 0
function drain(decoder: FrameDecoder): void {
  for (const m of decoder.frames()) {
    if (m.type !== 'chunk' || m.payload.length !== size) throw new Error('bench: wrong frame decoded')
    sink += m.payload[size - 1]!
  }
}

const decoder = new FrameDecoder()
const cases: readonly (readonly [string, () => void])[] = [
  [
    'reference: Buffer.concat of reads',
    () => {
      const joined = Buffer.concat(pieces)
      sink += joined[joined.length - 1]!
    },
  ],
  [
    'encode+decode, parts as encoded',
    () => {
      for (const part of encodeMessage(msg)) decoder.push(part)
      drain(decoder)
    },
  ],
  [
    'encode+decode, 64 KiB reads',
    () => {
      encodeMessage(msg)
      for (const piece of pieces) decoder.push(piece)
      drain(decoder)
    },
  ],
]

// The machine is shared: run several rounds, rotating the order so no case always runs after
// the others' garbage, and report the median of each case's per-round ratio to the reference.
const perRound: number[][] = cases.map(() => [])
for (let round = 0; round < rounds; round++) {
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs) })
  const order = cases.map((_, i) => (i + round) % cases.length)
  for (const i of order) bench.add(cases[i]![0], cases[i]![1])
  await bench.run()
  for (const task of bench.tasks) {
    const r = task.result
    if (r.state !== 'completed') throw new Error(`bench: ${task.name} ${r.state}`)
    perRound[cases.findIndex(([name]) => name === task.name)]!.push(r.latency.mean)
  }
}
decoder.finish()

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const mbps = (ms: number): number => size / 1e6 / (ms / 1000)
console.log(
  `chunk frames of ${chunkMiB} MiB, ${rounds} rounds × ${timeMs} ms per case, Node ${process.version}`,
)
cases.forEach(([name], i) => {
  const ms = perRound[i]!
  const ratio = median(ms.map((m, r) => perRound[0]![r]! / m))
  console.log(
    `${name.padEnd(34)} ${mbps(median(ms)).toFixed(0).padStart(8)} MB/s  ${(median(ms) * 1000).toFixed(1).padStart(8)} µs/frame  ratio ${ratio.toFixed(2)}`,
  )
})
if (sink === -1) console.log('unreachable')
