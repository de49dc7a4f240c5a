import { constants } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { MiB } from '../types.ts'
import { DIRECT_ALIGN, O_DIRECT } from './direct-writes.ts'

/**
 * Reads of a mostly sparse file through a second, O_DIRECT handle.
 *
 * Why: a buffered read of a hole makes the kernel allocate and zero a page-cache page for
 * every 4 KiB it hands out, and evict someone else's to make room. Measured here on ext4,
 * 8 GiB of holes: 0.4–1.7 GB/s and 2–9 s of system CPU buffered (the first read), against
 * ~14 GB/s and 0.26 s read directly (the kernel only zeroes the caller's memory). For a
 * 1 TiB sparse file that is the difference between indexing in minutes and in most of an hour.
 *
 * Only for files the filesystem says are mostly holes (allocated blocks under half the size):
 * a direct read of data that is in the page cache goes to the device instead, which a mostly
 * sparse file has little of. The choice changes only how bytes are read, never which: a
 * direct read returns the file's contents (the kernel writes back dirty pages of the range
 * first), holes as zeros.
 *
 * O_DIRECT needs the memory address, file offset and length aligned to the device's block, so
 * a read goes through a slot of a page-aligned WebAssembly.Memory (as direct writes do) and is
 * copied out. An unaligned offset, a refusal (EINVAL: tmpfs, some network filesystems) or a
 * short read leaves the rest to the buffered handle.
 */

export const DIRECT_READ_SLOT_BYTES = 1 * MiB
/** Slots, one per read in flight: libuv's default thread pool runs four file reads at once. */
export const DIRECT_READ_SLOTS = 4
/** Smaller files are always read buffered: the slots' fixed memory is not worth it. */
export const DIRECT_READ_MIN_SIZE = 64 * MiB
const WASM_PAGE = 64 * 1024

// The project's lib settings carry no WebAssembly typings; this is the slice used here.
interface WasmMemoryApi {
  Memory: new (d: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer }
}
const { Memory } = (globalThis as unknown as { WebAssembly: WasmMemoryApi }).WebAssembly

/** True when a file of `size` bytes with `blocks` 512-byte blocks allocated is read directly. */
export function mostlyHoles(size: number, blocks: number): boolean {
  return O_DIRECT !== undefined && size >= DIRECT_READ_MIN_SIZE && blocks * 512 < size / 2
}

export class DirectReads {
  readonly #fh: FileHandle
  readonly #free: Uint8Array[] = []
  readonly #waiting: Array<(slot: Uint8Array) => void> = []
  #off = false

  private constructor(fh: FileHandle) {
    this.#fh = fh
    const memory = new Memory({
      initial: (DIRECT_READ_SLOTS * DIRECT_READ_SLOT_BYTES) / WASM_PAGE,
      maximum: (DIRECT_READ_SLOTS * DIRECT_READ_SLOT_BYTES) / WASM_PAGE,
    })
    for (let i = 0; i < DIRECT_READ_SLOTS; i++) {
      this.#free.push(new Uint8Array(memory.buffer, i * DIRECT_READ_SLOT_BYTES, DIRECT_READ_SLOT_BYTES))
    }
  }

  /**
   * A direct handle on the file at `path` when it is the file `id` names and the platform and
   * filesystem allow one; undefined otherwise (the caller reads buffered).
   */
  static async open(path: string, id: { dev: bigint; ino: bigint }): Promise<DirectReads | undefined> {
    if (O_DIRECT === undefined) return undefined
    // O_NONBLOCK: the path may have become a FIFO since it was checked (see READ_NONBLOCK in
    // ./source-file.ts); the identity check below then refuses it.
    const flags = constants.O_RDONLY | O_DIRECT | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0)
    const fh = await open(path, flags).catch(() => undefined)
    if (fh === undefined) return undefined
    const s = await fh.stat({ bigint: true }).catch(() => undefined)
    if (s?.dev === id.dev && s.ino === id.ino) return new DirectReads(fh)
    await fh.close().catch(() => {})
    return undefined
  }

  /**
   * Fills `into[0, n)` from `offset` as far as direct reads go, where n is at most `length`;
   * returns n. 0 when the offset is not aligned or direct reads were refused.
   */
  async read(offset: number, length: number, into: Uint8Array): Promise<number> {
    if (this.#off || offset % DIRECT_ALIGN !== 0) return 0
    let done = 0
    const slot = await this.#acquire()
    try {
      while (done < length && !this.#off) {
        const n = Math.min(DIRECT_READ_SLOT_BYTES, length - done)
        // The length rounded up to a block: the kernel stops at the end of the file.
        const ask = Math.min(DIRECT_READ_SLOT_BYTES, Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN)
        let got: number
        try {
          got = (await this.#fh.read(slot, 0, ask, offset + done)).bytesRead
        } catch (err) {
          // EINVAL: this filesystem refuses the alignment; the buffered handle takes over for good.
          if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
          this.#off = true
          break
        }
        const used = Math.min(got, n)
        into.set(slot.subarray(0, used), done)
        done += used
        // Short: the end of the file, or a block the kernel split; the buffered handle goes on.
        if (used < n || used % DIRECT_ALIGN !== 0) break
      }
    } finally {
      this.#release(slot)
    }
    return done
  }

  async close(): Promise<void> {
    this.#off = true
    await this.#fh.close().catch(() => {})
  }

  #acquire(): Promise<Uint8Array> {
    const slot = this.#free.pop()
    if (slot !== undefined) return Promise.resolve(slot)
    // Waiters are bounded by the caller's reads in flight (each holds a chunk buffer).
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #release(slot: Uint8Array): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next(slot)
    else this.#free.push(slot)
  }
}
