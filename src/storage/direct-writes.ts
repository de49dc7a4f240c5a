import { constants } from 'node:fs'
import { AbortedError, ConfigInvalidError } from '../errors.ts'
import { MiB } from '../types.ts'

/**
 * Aligned staging memory for direct (O_DIRECT) writes of verified chunks.
 *
 * Why: a buffered write copies every byte into the page cache, and on these
 * machines that copy is most of a receiver's disk cost — 1 GiB of 1 MiB
 * pwrites takes 0.2 to 2.0 s of system CPU depending on whether the kernel has
 * to hand out fresh pages, CPU a 2-core transfer takes from hashing and
 * decryption. Writing the same GiB directly, through a copy into staging
 * memory, takes a steady 0.35–0.45 s, and leaves no dirty pages for the
 * kernel's flusher to write back later.
 *
 * O_DIRECT needs the memory address, the file offset and the length aligned to
 * the device's block. Node's ArrayBuffers come from malloc (16-byte aligned), so
 * a chunk is copied into a slot of a WebAssembly.Memory, whose base is page
 * aligned. The slots are one fixed allocation per engine (`slots` × 1 MiB);
 * a write waits for a free slot, so at most `slots` direct writes are in flight.
 */
/** Engine option `directWrites`; defaults and ranges: src/engine/config/table.ts. */
export interface DirectWriteOptions {
  /** Write chunks with O_DIRECT where the filesystem accepts it (Linux); off: buffered writes only. */
  enabled: boolean
  /** Staging slots of {@link DIRECT_SLOT_BYTES} each (fixed memory: slots MiB); also the most direct writes in flight. */
  slots: number
}

/** Alignment of offsets and lengths written directly: a 4 KiB block covers 512-byte and 4K-sector devices. */
export const DIRECT_ALIGN = 4096
export const DIRECT_SLOT_BYTES = 1 * MiB
/** Most staging slots: 64 MiB of fixed memory. */
export const MAX_DIRECT_SLOTS = 64
const WASM_PAGE = 64 * 1024

/** The open flag, or undefined where the platform has none (macOS, Windows). */
export const O_DIRECT: number | undefined = (constants as { O_DIRECT?: number }).O_DIRECT

// The project's lib settings carry no WebAssembly typings; this is the slice used here.
interface WasmMemoryApi {
  Memory: new (d: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer }
}
const { Memory } = (globalThis as unknown as { WebAssembly: WasmMemoryApi }).WebAssembly

/** The bytes of `length` at `offset` that can be written directly: 0 unless both are aligned. */
export function directPrefix(offset: number, length: number): number {
  if (offset % DIRECT_ALIGN !== 0) return 0
  return length - (length % DIRECT_ALIGN)
}

export class DirectWriteSlots {
  readonly slotCount: number
  readonly #free: Uint8Array[] = []
  /** Writers waiting for a slot; at most one per chunk write in flight, which the memory budget bounds. */
  readonly #waiting: Array<(slot: Uint8Array) => void> = []

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1 || slots > MAX_DIRECT_SLOTS) {
      throw new ConfigInvalidError(
        `direct-write slots must be an integer from 1 to ${MAX_DIRECT_SLOTS}, got ${slots}`,
      )
    }
    this.slotCount = slots
    const pages = (slots * DIRECT_SLOT_BYTES) / WASM_PAGE
    const memory = new Memory({ initial: pages, maximum: pages })
    for (let i = 0; i < slots; i++) {
      this.#free.push(new Uint8Array(memory.buffer, i * DIRECT_SLOT_BYTES, DIRECT_SLOT_BYTES))
    }
  }

  get freeSlots(): number {
    return this.#free.length
  }

  /** A free slot; waits for one while all are writing. Rejects with AbortedError on `signal`. */
  acquire(signal?: AbortSignal): Promise<Uint8Array> {
    const slot = this.#free.pop()
    if (slot !== undefined) return Promise.resolve(slot)
    if (signal?.aborted) return Promise.reject(new AbortedError('the write was cancelled'))
    return new Promise((resolve, reject) => {
      const take = (s: Uint8Array): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve(s)
      }
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(take)
        if (at >= 0) this.#waiting.splice(at, 1)
        reject(new AbortedError('the write was cancelled'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(take)
    })
  }

  release(slot: Uint8Array): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next(slot)
    else this.#free.push(slot)
  }
}
