#!/usr/bin/env node
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
