import { InternalError } from '../errors.ts'

/**
 * The URL of `rel` in the package's compiled `dist/` folder, found from `from` (the caller's
 * `import.meta.url`) wherever the caller runs: compiled (dist/…/x.js), in the CLI bundle
 * (dist/bundle/haul.js, scripts/bundle.mjs) or from source (src/…/x.ts: tests, benchmarks).
 * Worker threads always run compiled files, whichever of these starts them.
 */
export function distFile(rel: string, from: string): URL {
  const url = new URL(from)
  const dir = url.pathname.endsWith('.ts') ? '/src/' : '/dist/'
  const at = url.pathname.lastIndexOf(dir)
  if (at < 0) throw new InternalError(`cannot tell where the package lies from ${url.pathname}`)
  return new URL(`dist/${rel}`, new URL(url.pathname.slice(0, at + 1), url))
}
