/**
 * FastCDC content-defined chunking (Xia et al., USENIX ATC 2016; IEEE TPDS 2020).
 *
 * The exact algorithm, so another implementation can reproduce haul's cut points bit for bit:
 *
 * - Gear table: `GEAR[i]` (i = 0..255) is the first four bytes, read big-endian as an unsigned
 *   32-bit integer, of SHA-256(UTF-8 bytes of {@link GEAR_SEED} followed by the single byte `i`).
 * - Fingerprint: 32-bit, `fp = (fp << 1) + GEAR[byte]` modulo 2^32, reset to 0 at every chunk start.
 * - Masks: with `b = log2(avgSize)` and normalization level `nc` (default 2),
 *   `maskS` is the top `b + nc` bits of a 32-bit word and `maskL` the top `b - nc` bits.
 *   Top bits are used because bit k of a gear fingerprint depends on the last k + 1 bytes: the top
 *   bits give the widest window (32 bytes).
 * - For a chunk starting at `s`, bytes `s .. s+minSize-1` are skipped (never hashed). Then for each
 *   position `p` from `s + minSize`: update `fp` with `data[p]`; the mask is `maskS` while
 *   `p - s < avgSize` and `maskL` after; if `(fp & mask) == 0` the chunk is `data[s ..= p]`
 *   (the byte that matched is the chunk's last byte). With no match, the chunk is cut at
 *   `maxSize`, or at the end of the input if that comes first.
 *
 * Performance: the loop is unrolled by 8 over an Int32Array copy of the table, so V8 keeps `fp` in
 * a register as an int32 (`| 0` marks the add as truncating); that is ~2.5x a one-byte-per-iteration
 * loop. The 2020 paper's "roll two bytes per iteration" trick (a pre-shifted table, one shift per two
 * bytes) measured no faster in V8, 0.85x-1.0x of this loop (bench/gear.bench.ts runs all three side
 * by side): shifts are free next to the bounds-checked loads, and the trick needs masks below bit
 * 31, which would shrink the window.
 */

import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '../errors.ts'
import { type CdcSizes, verifyCdcSizes } from './params.ts'

/** The seed the gear table is derived from. Changing it changes every CDC cut point. */
export const GEAR_SEED = 'haul/fastcdc/gear/v1'

function deriveGear(): Int32Array {
  const seed = Buffer.from(GEAR_SEED, 'utf8')
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    const digest = createHash('sha256').update(seed).update(Uint8Array.of(i)).digest()
    table[i] = digest.readInt32BE(0)
  }
  return table
}

// Signed view for the hot loop: values >= 2^31 in a Uint32Array would load as doubles.
const GEAR_I32 = deriveGear()

/**
 * The 256-entry gear table (see the module header for its derivation). A copy: writing to it does
 * not change how haul cuts.
 */
export const GEAR: Uint32Array = new Uint32Array(GEAR_I32)

/** FastCDC normalization level used by haul's descriptors (not carried in ChunkingParams). */
export const DEFAULT_NORMALIZATION = 2

export interface CdcCutterOptions extends CdcSizes {
  /**
   * Normalization level 0..3: how much sharper the mask is below avg and looser above it.
   * Descriptors always use the default; other levels are for experiments.
   * @default 2
   */
  readonly normalization?: number
}

/** A 32-bit mask of the top `n` bits, as an int32 (bit 31 set makes it negative). */
function topBits(n: number): number {
  return n <= 0 ? 0 : (-1 << (32 - n)) | 0
}

/**
 * Scans `d[i .. end)` with `maskS` below `normal` and `maskL` from `normal`; returns the exclusive
 * end index of the chunk (index after the matching byte), or -1 if nothing matched.
 * Kept free of `this` and closures so V8 compiles one tight loop.
 */
function scan(d: Uint8Array, i: number, normal: number, end: number, maskS: number, maskL: number): number {
  const g = GEAR_I32
  let fp = 0
  let m = maskS
  let barrier = normal
  for (let phase = 0; phase < 2; phase++) {
    const last8 = barrier - 7
    for (; i < last8; i += 8) {
      fp = ((fp << 1) + g[d[i]!]!) | 0
      if ((fp & m) === 0) return i + 1
      fp = ((fp << 1) + g[d[i + 1]!]!) | 0
      if ((fp & m) === 0) return i + 2
      fp = ((fp << 1) + g[d[i + 2]!]!) | 0
      if ((fp & m) === 0) return i + 3
      fp = ((fp << 1) + g[d[i + 3]!]!) | 0
      if ((fp & m) === 0) return i + 4
      fp = ((fp << 1) + g[d[i + 4]!]!) | 0
      if ((fp & m) === 0) return i + 5
      fp = ((fp << 1) + g[d[i + 5]!]!) | 0
      if ((fp & m) === 0) return i + 6
      fp = ((fp << 1) + g[d[i + 6]!]!) | 0
      if ((fp & m) === 0) return i + 7
      fp = ((fp << 1) + g[d[i + 7]!]!) | 0
      if ((fp & m) === 0) return i + 8
    }
    for (; i < barrier; i++) {
      fp = ((fp << 1) + g[d[i]!]!) | 0
      if ((fp & m) === 0) return i + 1
    }
    m = maskL
    barrier = end
  }
  return -1
}

/** Finds FastCDC cut points. Stateless between calls: safe to share, and cheap to construct. */
export class CdcCutter {
  readonly minSize: number
  readonly avgSize: number
  readonly maxSize: number
  readonly normalization: number
  readonly #maskS: number
  readonly #maskL: number

  /** @throws InvalidArgumentError if the sizes break the bounds in params.ts or the level is not 0..3 */
  constructor(params: CdcCutterOptions) {
    verifyCdcSizes(params)
    const nc = params.normalization ?? DEFAULT_NORMALIZATION
    if (!Number.isInteger(nc) || nc < 0 || nc > 3) {
      throw new InvalidArgumentError(`FastCDC normalization level must be 0, 1, 2 or 3, got ${nc}`)
    }
    this.minSize = params.minSize
    this.avgSize = params.avgSize
    this.maxSize = params.maxSize
    this.normalization = nc
    const bits = Math.round(Math.log2(params.avgSize))
    this.#maskS = topBits(bits + nc)
    this.#maskL = topBits(bits - nc)
  }

  /**
   * Length of the next chunk starting at `data[start]`; `end` is how much data is available.
   * If no cut was found before `end`, fewer than maxSize bytes were scanned and `!isFinal`, returns
   * -1 (call again from the same `start` with more data; the result does not depend on how the
   * data was split). If `isFinal`, the remainder (<= maxSize) is the last chunk; 0 if `start === end`.
   */
  nextCut(data: Uint8Array, start: number, end: number, isFinal: boolean): number {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end)) {
      throw new InvalidArgumentError(`nextCut needs 0 <= start <= end, got start ${start}, end ${end}`)
    }
    if (end > data.length) {
      throw new InvalidArgumentError(`nextCut end ${end} is past the data (length ${data.length})`)
    }
    // Buffer and other subclasses would make the loop polymorphic; a plain view keeps it monomorphic.
    const d =
      data.constructor === Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length)
    const avail = end - start
    const max = this.maxSize
    const limit = Math.min(avail, max)
    if (limit > this.minSize) {
      const normal = start + Math.min(this.avgSize, limit)
      const cut = scan(d, start + this.minSize, normal, start + limit, this.#maskS, this.#maskL)
      if (cut >= 0) return cut - start
    }
    if (limit === max) return max
    return isFinal ? avail : -1
  }
}

/**
 * Cuts `data` into chunks. Returns all complete chunks; `consumed` = sum(lengths). Unless
 * `isFinal`, the tail after `consumed` has no cut yet: prepend it to the next buffer.
 */
export function cdcCuts(
  data: Uint8Array,
  params: CdcCutterOptions,
  isFinal: boolean,
): { lengths: number[]; consumed: number } {
  const cutter = new CdcCutter(params)
  const lengths: number[] = []
  let pos = 0
  while (pos < data.length) {
    const len = cutter.nextCut(data, pos, data.length, isFinal)
    if (len <= 0) break
    lengths.push(len)
    pos += len
  }
  return { lengths, consumed: pos }
}
