/**
 * The parts of a transfer's CPU floor, measured in the calling process on the bytes it is given:
 * ChaCha20-Poly1305 as Noise uses it (one AEAD call per record of at most 65,535 bytes, each with
 * its own key schedule and tag) and SHA-256 over 1 MiB chunks, as the receiver verifies them.
 * Each in CPU seconds per GiB of one thread, the least of three passes after a warm-up one (a
 * floor: the least it costs; single passes here moved between 0.8 and 1.65 s for ChaCha20).
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'

const GiB = 1024 ** 3
/** Noise's largest message less its 16-byte tag. */
const RECORD = 65_535 - 16
const CHUNK = 1024 * 1024

export interface CpuFloor {
  /** Encrypting (or, at about the same cost, decrypting) one GiB: each side pays it once. */
  chachaSeconds: number
  /** Hashing one GiB once (the receiver's verification). */
  sha256Seconds: number
}

/** Measures both over `sampleBytes` of random data (default 128 MiB a pass), scaled to one GiB. */
export function measureCpuFloor(sampleBytes = 128 * 1024 * 1024): CpuFloor {
  const data = randomBytes(64 * 1024 * 1024)
  const key = randomBytes(32)
  const nonce = Buffer.alloc(12)
  const pass = (each: (slice: Buffer) => void, step: number): number => {
    const t0 = process.cpuUsage()
    for (let done = 0; done < sampleBytes; ) {
      for (let off = 0; off < data.length && done < sampleBytes; off += step, done += step) {
        each(data.subarray(off, Math.min(off + step, data.length)))
      }
    }
    const t = process.cpuUsage(t0)
    return ((t.user + t.system) / 1e6) * (GiB / sampleBytes)
  }
  let counter = 0
  const seal = (slice: Buffer): void => {
    nonce.writeUInt32LE(++counter, 4)
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
    c.update(slice)
    c.final()
    c.getAuthTag()
  }
  const hash = (slice: Buffer): void => {
    createHash('sha256').update(slice).digest()
  }
  const least = (each: (slice: Buffer) => void, step: number): number => {
    pass(each, step)
    return Math.min(pass(each, step), pass(each, step), pass(each, step))
  }
  return { chachaSeconds: least(seal, RECORD), sha256Seconds: least(hash, CHUNK) }
}
