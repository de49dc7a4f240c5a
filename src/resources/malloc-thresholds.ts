/**
 * Keeps glibc's malloc from handing the top of its heap back to the kernel after every burst of
 * frees, once per process.
 *
 * Why: glibc returns the heap's free top to the kernel (brk down) as soon as 128 KiB are free
 * there, until the first free of a block it had mmap'd raises that bar (to twice the block's
 * size; M_TRIM_THRESHOLD, adjusted dynamically). Noise allocates two ~64 KiB buffers per
 * record, freed in bursts by the garbage collector, so a process moving data cycled its heap's
 * top through the kernel: one 1 GiB transfer, measured with strace on a fresh `haul send`, moved
 * the program break up 480 MB and down 472 MB in 2,558 brk calls, and every page that came back
 * was a page fault (65,000–110,000 per GiB; ~25 µs each on this VM). Freeing one block of
 * BLOCK_BYTES at start, which malloc mmaps, raises the bar to twice that at once: the same
 * sender then took 122–3,083 faults per GiB and 2.7–2.9 CPU seconds against 2.7–4.4, and a
 * receiver ~25,000 faults against ~48,000 (docs/BENCHMARKS.md).
 *
 * The cost: up to twice BLOCK_BYTES of free heap stays resident, and blocks under BLOCK_BYTES come
 * from the heap instead of their own mappings. Elsewhere than glibc (musl, macOS) the block is
 * only allocated and freed.
 */
const BLOCK_BYTES = 8 * 1024 * 1024

let raised = false

/** Raises glibc's trim and mmap thresholds for this process (once; later calls do nothing). */
export function raiseMallocThresholds(): void {
  if (raised) return
  raised = true
  // transfer(0) detaches the buffer and frees its memory now, not at a later GC.
  new ArrayBuffer(BLOCK_BYTES).transfer(0)
}
