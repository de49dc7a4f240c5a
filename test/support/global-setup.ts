import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The suite's own cache folder: engines and `haul` processes started without a data folder keep
 * descriptors in `$XDG_CACHE_HOME/haul`, which would otherwise be the user's, shared by every
 * test (a descriptor kept by one test makes another's publish skip indexing) and left behind.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'haul-test-cache-'))
  process.env.XDG_CACHE_HOME = dir
  return () => rmSync(dir, { recursive: true, force: true })
}
