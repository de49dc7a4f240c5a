/** Deterministic test inputs for the workers tests. */

/** Seeded test inputs (src/util/random.ts). */
import { mulberry32 as prng } from '../../src/util/random.ts'

export { prng }

export function randomData(n: number, seed = 1): Uint8Array {
  const r = prng(seed)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0
  return out
}

const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had ' +
  'by word but not what all were we when your can said there use an each which she do how their if will ' +
  'up other about out many then them these so some her would make like him into time has look two more'
).split(' ')

/** Word salad with numbers and ids: lz4 ~0.65, zstd-1 ~0.45 of the plain size. */
export function textLike(n: number, seed = 1): Uint8Array {
  const r = prng(seed)
  const enc = new TextEncoder()
  const out = new Uint8Array(n)
  let i = 0
  while (i < n) {
    const x = r()
    let w: string
    if (x < 0.08) w = String(Math.floor(r() * 1e6))
    else if (x < 0.12) w = Math.floor(r() * 1e9).toString(36)
    else w = WORDS[Math.floor(r() * WORDS.length)]!
    const b = enc.encode(w + (r() < 0.07 ? '.\n' : ' '))
    out.set(b.subarray(0, n - i), i)
    i += b.length
  }
  return out
}
