import { describe, expect, it } from 'vitest'
import { slices } from '../../src/net/stream-writer.ts'
import { random } from './helpers.ts'

const KiB = 1024
const MiB = 1024 * KiB

const sizes = (runs: Uint8Array[][]) => runs.map((run) => run.map((p) => p.byteLength))
const joined = (runs: Uint8Array[][]) => Buffer.concat(runs.flat())

describe('slices: the sends one write becomes', () => {
  it("a frame's header and a small payload go out as one send", () => {
    expect(sizes([...slices([random(18), random(16 * KiB)], MiB)])).toEqual([[18, 16 * KiB]])
  })

  it('several small frames of one write share a send', () => {
    expect(sizes([...slices([random(18), random(700), random(9)], MiB)])).toEqual([[18, 700, 9]])
  })

  it('cuts runs at the slice size across part boundaries, keeping every byte in order', () => {
    const parts = [random(18), random(MiB), random(3 * MiB + 5)]
    const runs = [...slices(parts, MiB)]
    expect(sizes(runs)).toEqual([[18, MiB - 18], [18, MiB - 18], [MiB], [MiB], [23]])
    expect(joined(runs).equals(Buffer.concat(parts))).toBe(true)
  })

  it('passes a part that fits whole as itself, not a copy or a view', () => {
    const part = random(100)
    const [[only]] = [...slices([part], MiB)] as [[Uint8Array]]
    expect(only).toBe(part)
  })

  it('yields nothing for empty parts', () => {
    expect([...slices([], MiB)]).toEqual([])
    expect(sizes([...slices([new Uint8Array(0), random(3), new Uint8Array(0)], MiB)])).toEqual([[3]])
  })
})
