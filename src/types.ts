/**
 * Value types shared by several rooms (chunking, descriptor, workers, protocol).
 * Only plain data lives here: no I/O, no classes.
 */

/** How a file is cut into chunks. Committed in the descriptor header. */
export type ChunkingParams =
  | { readonly kind: 'fixed'; readonly size: number }
  | { readonly kind: 'cdc'; readonly minSize: number; readonly avgSize: number; readonly maxSize: number }

/** Per-chunk compression. Ids are on the wire: never renumber. */
export const CODEC_IDS = { none: 0, lz4: 1, zstd: 2 } as const
export type Codec = keyof typeof CODEC_IDS
export const CODECS: readonly Codec[] = ['none', 'lz4', 'zstd']

export function codecFromId(id: number): Codec | undefined {
  return CODECS[id]
}

/** One row of a descriptor's leaf table. `hash` is SHA-256 of the chunk's plain bytes. */
export interface LeafEntry {
  readonly offset: number
  readonly length: number
  readonly hash: Uint8Array
}

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
