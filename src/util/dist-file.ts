import { existsSync } from 'node:fs'
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

/**
 * The `href` of the compiled file `rel` a worker thread runs (`what` names it in the error), found
 * as distFile finds it; InternalError when it is missing, telling the user to build.
 */
export function threadFile(rel: string, from: string, what: string): string {
  const url = distFile(rel, from)
  if (!existsSync(url)) throw new InternalError(`${what} ${url.pathname} is missing: run "npm run build"`)
  return url.href
}
