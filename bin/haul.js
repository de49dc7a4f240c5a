#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=100
// The flags are ENGINE_NODE_FLAGS (src/process-flags.ts, where the measurements are; a test keeps
// the two equal). --max-semi-space-size=1: chunk buffers live outside the JS heap and what the
// heap holds per chunk is small and short-lived; a small young generation collects it early,
// so resident memory stays flat over a long run (measured: haul index of 1 vs 4 GiB,
// 110 vs 118 MB peak RSS at 2 MiB, against 120 vs 142 MB with V8's default 3 x 16 MiB
// nursery). 1 MiB against 2: 1 GiB transfers 198–216 vs 150–205 MB/s and sender peak
// RSS 164–167 vs 176–180 MB (bench/transfer.ts, interleaved; 8 MiB was worse still).
// --heap-growing-percent=100: the old generation doubles between full GCs (see process-flags.ts).
// The CLI is compiled to dist/ by `npm run build` (run by `npm ci`)
// Node 24 is pinned in devDependencies, so `npx haul` and `npm start` find it first on PATH.
const [major] = process.versions.node.split('.').map(Number)
if (major < 22) {
  console.error(
    `haul needs Node >= 22 (found ${process.versions.node}); run it through npx or npm so the pinned Node 24 is used.`,
  )
  process.exit(1)
}
await import('../dist/cli/main.js')
