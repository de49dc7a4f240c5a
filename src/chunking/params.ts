/**
 * Chunking parameters: the allowed values, their defaults, and the CLI spelling.
 *
 * Bounds (all in bytes):
 * - fixed: `size` is a power of two in [64 KiB, 64 MiB]. The standard sizes are
 *   {@link FIXED_CHUNK_SIZES}; other powers of two are accepted for tuning.
 * - cdc: integers with `64 KiB <= minSize <= avgSize <= maxSize <= 64 MiB`, `avgSize` a power of two.
 *
 * Why these bounds: the 64 KiB floor caps the leaf count (a 10 TiB file at 64 KiB is already
 * 168M leaves, 5 GiB of leaf hashes) and the per-chunk request/frame overhead; the 64 MiB ceiling
 * caps every per-chunk buffer (read, compress, in flight) so memory budgets stay meaningful.
 * `avgSize` must be a power of two because FastCDC's masks have log2(avgSize) ± normalization bits.
 */

import { InvalidArgumentError } from '../errors.ts'
import { type ChunkingParams, GiB, KiB, MiB } from '../types.ts'

/** Smallest chunk size any chunking may ask for (fixed size, or CDC minimum). */
export const MIN_CHUNK_SIZE = 64 * KiB
/** Largest chunk any chunking can produce: the bound for every per-chunk buffer. */
export const MAX_CHUNK_SIZE = 64 * MiB

/** The fixed sizes haul offers by name; any power of two within the bounds is also accepted. */
export const FIXED_CHUNK_SIZES = [1 * MiB, 2 * MiB, 4 * MiB] as const

export type FixedChunkingParams = Extract<ChunkingParams, { kind: 'fixed' }>
export type CdcChunkingParams = Extract<ChunkingParams, { kind: 'cdc' }>

export const DEFAULT_FIXED: FixedChunkingParams = Object.freeze({ kind: 'fixed', size: 1 * MiB })

/**
 * Default content-defined chunking: min 512 KiB, avg 1 MiB, max 4 MiB.
 * - avg 1 MiB matches the default fixed size, so descriptors and request windows look alike.
 * - min = avg/2: the gear hash never looks at the first `minSize` bytes of a chunk, so this halves
 *   the bytes hashed. With normalization level 2 (mask of log2(avg)+2 bits below avg) a cut before
 *   avg is rare anyway (~12% of chunks on random data), so a higher minimum costs little dedup.
 * - max 4 MiB = the largest standard fixed size, so CDC needs no bigger buffers or frames than
 *   fixed:4m; on random data a hard cut at max happens with probability ~exp(-12).
 */
export const DEFAULT_CDC: CdcChunkingParams = Object.freeze({
  kind: 'cdc',
  minSize: 512 * KiB,
  avgSize: 1 * MiB,
  maxSize: 4 * MiB,
})

/** The size fields of a CDC `ChunkingParams`. */
export interface CdcSizes {
  readonly minSize: number
  readonly avgSize: number
  readonly maxSize: number
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n
}

function show(n: unknown): string {
  return typeof n === 'number' && Number.isSafeInteger(n) ? `${n} (${formatSize(n)})` : String(n)
}

/** Throws InvalidArgumentError unless `s` satisfies the CDC bounds in this module's header. */
export function verifyCdcSizes(s: CdcSizes): void {
  const { minSize, avgSize, maxSize } = s
  for (const [name, v] of [
    ['minSize', minSize],
    ['avgSize', avgSize],
    ['maxSize', maxSize],
  ] as const) {
    if (!Number.isSafeInteger(v)) {
      throw new InvalidArgumentError(`cdc ${name} must be a whole number of bytes, got ${show(v)}`)
    }
  }
  if (minSize < MIN_CHUNK_SIZE) {
    throw new InvalidArgumentError(
      `cdc minSize must be at least 64 KiB, got ${show(minSize)}; try cdc:512k:1m:4m (the default)`,
    )
  }
  if (maxSize > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`cdc maxSize must be at most 64 MiB, got ${show(maxSize)}`)
  }
  if (!isPowerOfTwo(avgSize)) {
    throw new InvalidArgumentError(
      `cdc avgSize must be a power of two (e.g. 256k, 1m, 4m), got ${show(avgSize)}`,
    )
  }
  if (!(minSize <= avgSize && avgSize <= maxSize)) {
    throw new InvalidArgumentError(
      `cdc sizes must satisfy min <= avg <= max, got min ${show(minSize)}, avg ${show(avgSize)}, ` +
        `max ${show(maxSize)}; e.g. cdc:${formatSize(avgSize / 2)}:${formatSize(avgSize)}:${formatSize(avgSize * 4)}`,
    )
  }
}

/**
 * Throws InvalidArgumentError with an actionable message unless `p` is a chunking haul supports.
 * Safe to call on untrusted input (e.g. a decoded descriptor header).
 */
export function verifyChunkingParams(p: ChunkingParams): void {
  if (typeof p !== 'object' || p === null) {
    throw new InvalidArgumentError('chunking parameters must be an object with a kind of "fixed" or "cdc"')
  }
  const keys = p.kind === 'fixed' ? ['kind', 'size'] : ['kind', 'minSize', 'avgSize', 'maxSize']
  const extra = Object.keys(p).find((k) => !keys.includes(k))
  if ((p.kind === 'fixed' || p.kind === 'cdc') && extra !== undefined) {
    throw new InvalidArgumentError(
      `${p.kind} chunking has no parameter ${extra}: it takes ${keys.join(', ')}`,
    )
  }
  if (p.kind === 'fixed') {
    const size = p.size
    if (!isPowerOfTwo(size) || size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE) {
      throw new InvalidArgumentError(
        `fixed chunk size must be a power of two between 64 KiB and 64 MiB, got ${show(size)}; ` +
          'try fixed:1m, fixed:2m or fixed:4m',
      )
    }
    return
  }
  if (p.kind === 'cdc') {
    verifyCdcSizes(p)
    return
  }
  throw new InvalidArgumentError(
    `unknown chunking kind ${JSON.stringify((p as { kind?: unknown }).kind)}; use "fixed" or "cdc"`,
  )
}

/** The largest chunk `p` can produce: what a per-chunk buffer must hold. */
export function maxChunkSize(p: ChunkingParams): number {
  return p.kind === 'fixed' ? p.size : p.maxSize
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: KiB,
  ki: KiB,
  kib: KiB,
  m: MiB,
  mi: MiB,
  mib: MiB,
  g: GiB,
  gi: GiB,
  gib: GiB,
}

/**
 * Parses a byte size: a whole number with an optional binary unit, `k`/`KiB`, `m`/`MiB`, `g`/`GiB`
 * (case-insensitive). Decimal units (`KB`, `MB`) are refused rather than guessed.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text)
  const unit = m?.[2]?.toLowerCase() ?? ''
  const mult = UNITS[unit]
  if (m === null || mult === undefined) {
    const hint = /^[kmg]b$/.test(unit)
      ? ` ("${m?.[2]}" is ambiguous: sizes are binary, write 1m or 1MiB)`
      : ''
    throw new InvalidArgumentError(`cannot read size "${text}"${hint}; write e.g. 64k, 1m, 4MiB or 65536`)
  }
  const n = Number(m[1]) * mult
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`size "${text}" is too large`)
  return n
}

/** Formats a byte count in the largest binary unit that divides it exactly: "4MiB", "640KiB", "65537". */
export function formatSize(n: number): string {
  if (n > 0 && n % GiB === 0) return `${n / GiB}GiB`
  if (n > 0 && n % MiB === 0) return `${n / MiB}MiB`
  if (n > 0 && n % KiB === 0) return `${n / KiB}KiB`
  return String(n)
}

const SPEC_HELP =
  'use fixed[:<size>] (e.g. fixed:1m) or cdc[:<avg>] or cdc:<min>:<avg>:<max> (e.g. cdc:512k:1m:4m)'

/**
 * Parses the CLI form of a chunking and verifies it:
 * - `fixed` → fixed 1 MiB; `fixed:<size>` e.g. `fixed:1m`, `fixed:4MiB`
 * - `cdc` → {@link DEFAULT_CDC}; `cdc:<avg>` → min avg/2, max avg*4 (the default's ratios);
 *   `cdc:<min>:<avg>:<max>` e.g. `cdc:256k:1m:4m`
 */
export function parseChunking(spec: string): ChunkingParams {
  const parts = spec.trim().split(':')
  const kind = parts[0]?.toLowerCase()
  let p: ChunkingParams
  if (kind === 'fixed' && parts.length === 1) p = DEFAULT_FIXED
  else if (kind === 'fixed' && parts.length === 2) p = { kind: 'fixed', size: parseSize(parts[1]!) }
  else if (kind === 'cdc' && parts.length === 1) p = DEFAULT_CDC
  else if (kind === 'cdc' && parts.length === 2) {
    const avgSize = parseSize(parts[1]!)
    p = { kind: 'cdc', minSize: Math.floor(avgSize / 2), avgSize, maxSize: avgSize * 4 }
  } else if (kind === 'cdc' && parts.length === 4) {
    const [minSize, avgSize, maxSize] = parts.slice(1).map(parseSize) as [number, number, number]
    p = { kind: 'cdc', minSize, avgSize, maxSize }
  } else {
    throw new InvalidArgumentError(`unknown chunking "${spec}": ${SPEC_HELP}`)
  }
  verifyChunkingParams(p)
  return p
}

/** The canonical CLI form of `p`; `parseChunking(formatChunking(p))` deep-equals `p`. */
export function formatChunking(p: ChunkingParams): string {
  if (p.kind === 'fixed') return `fixed:${formatSize(p.size)}`
  return `cdc:${formatSize(p.minSize)}:${formatSize(p.avgSize)}:${formatSize(p.maxSize)}`
}
