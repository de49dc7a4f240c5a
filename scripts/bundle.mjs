/**
 * Bundles the CLI (dist/cli/main.js and everything it imports, node_modules included) into
 * dist/bundle/: haul.js, which bin/haul.js runs, and the chunks it imports. Run by `npm run build`
 * after tsc.
 *
 * Why: unbundled, a `haul get` loads some 900 module files before it creates its engine. Node's
 * loader spends its time resolving, reading and linking them, not running them: importing the
 * engine took 527–735 ms here, the same code bundled 224–326 ms (two cores, Node 24).
 *
 * Whitespace and syntax are minified (names are kept, so stack traces still name functions): a
 * 2.5 MB file instead of 4.1 MB parses sooner. Measured here, a whole `haul get` of a 6-byte file
 * from a `haul send` on 127.0.0.1, medians of 15 runs, twice: 687–701 ms as it was, 637–684
 * minified, 609–613 minified and with Node's compile cache (bin/haul.js); later, the machine
 * busier, 675–736 ms with the cache against 715–789 without (NODE_DISABLE_COMPILE_CACHE=1).
 *
 * Split at the CLI's dynamic imports (each command, the engine, the DHT, the load test): a
 * command parses only what it runs. The same 6-byte get, 20 runs of each alternating: median
 * 540 ms split against 590 ms as one file; `haul --version` 152–201 against 267–355 ms.
 *
 * The bundle sits two folders below the package root, as dist/cli/main.js does, so paths it
 * makes from its own location (package.json, bin/haul.js, the worker threads' files under dist/:
 * src/util/dist-file.ts) are the same either way. Worker threads run their own files from dist/.
 */
import { rm } from 'node:fs/promises'
import { build } from 'esbuild'

// Chunk names carry a hash of their content: the last build's would stay beside the new ones.
await rm('dist/bundle', { recursive: true, force: true })
await build({
  entryPoints: { haul: 'dist/cli/main.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // CommonJS dependencies in it require() Node's modules (util, fs, zlib, …): ESM has no require, so each file makes one.
  banner: { js: "import { createRequire as __haulRequire } from 'node:module'; const require = __haulRequire(import.meta.url);" },
  // Piscina starts each thread with a file of its own beside its code (its __dirname).
  external: ['piscina'],
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
})
