/**
 * The Node flags an engine process runs with: the `haul` bin's shebang (bin/haul.js, kept equal
 * by a test), the load-test engine processes and the benchmarks' peers. Embedders who want the
 * same behaviour pass them to their own process; the engine cannot set them for its host.
 *
 * - `--max-semi-space-size=1`: chunk data lives outside the JS heap, and what the heap holds per
 *   chunk is small and short-lived; a 1 MiB nursery keeps resident memory flat on long runs
 *   (README, Memory and limits).
 * - `--heap-growing-percent=100`: after a full GC, the old generation may double before the next
 *   one, instead of by a factor V8 picks from its recent GC speed (small on two busy cores: a
 *   sender ran a full GC every ~1.4 MB of growth). Measured at 1,000 concurrent 1–16 MiB
 *   transfers (bench/concurrency.ts, full scale, seven runs against four): the receiver peaked
 *   at idle +93–99 MB against +121–127 MB, at 188–241 against 174–201 MB/s; a single 1 GiB
 *   transfer ran the same (274–289 against 220–300 MB/s). The cost is at 10,000 small ones, on
 *   the same code: 90–105 (median 92.8) against 91–105 (median 95.9) MB/s. README, Memory and
 *   limits, has the table.
 */
export const ENGINE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--heap-growing-percent=100']
