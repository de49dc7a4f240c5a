/**
 * Bundles the CLI (dist/cli/main.js and everything it imports, node_modules included) into one
 * file, dist/bundle/haul.js, which bin/haul.js runs. Run by `npm run build` after tsc.
 *
 * Why: unbundled, a `haul get` loads some 900 module files before it creates its engine. Node's
 * loader spends its time resolving, reading and linking them, not running them: importing the
 * engine took 527–735 ms here, the same code bundled 224–326 ms (two cores, Node 24).
 *
 * The bundle sits two folders below the package root, as dist/cli/main.js does, so paths it
 * makes from its own location (package.json, bin/haul.js, the worker threads' files under dist/:
 * src/util/dist-file.ts) are the same either way. Worker threads run their own files from dist/.
 */
import { build } from 'esbuild'

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/bundle/haul.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // CommonJS dependencies in it require() Node's modules (util, fs, zlib, …): ESM has no require, so the bundle makes one.
  banner: { js: "import { createRequire as __haulRequire } from 'node:module'; const require = __haulRequire(import.meta.url);" },
  // Piscina starts each thread with a file of its own beside its code (its __dirname).
  external: ['piscina'],
  logLevel: 'warning',
})
