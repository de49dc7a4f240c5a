import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../support/files.ts'

const pool = new URL('../../src/workers/pool.ts', import.meta.url).pathname

/**
 * Tasks given after the first thread failed to start, in a process whose working folder was
 * deleted (worker threads cannot start there: Node resolves their cwd). Printed as JSON: each
 * task's outcome, or "hung" after 10 s.
 */
const SCRIPT = `
import { WorkerPool } from ${JSON.stringify(pool)}
const p = new WorkerPool({ threads: 2 })
const hung = setTimeout(() => { console.log(JSON.stringify('hung')); process.exit(3) }, 10000)
// The first thread fails with no task waiting for it.
await new Promise((r) => setTimeout(r, 500))
const rs = await Promise.allSettled(Array.from({ length: 4 }, () => p.hash(new Uint8Array(1024))))
clearTimeout(hung)
console.log(JSON.stringify(rs.map((r) => r.status === 'rejected' ? { code: r.reason.code, message: r.reason.message } : 'ok')))
await p.destroy()
`

describe('a worker pool whose threads cannot start', () => {
  it('fails its tasks with the reason instead of leaving them queued for ever', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      // A file, not -e: Node resolves an -e script against the working folder.
      const script = join(dir, 'script.mjs')
      await writeFile(script, SCRIPT)
      const out = await new Promise<string>((resolve) => {
        const child = spawn(
          'sh',
          ['-c', 'mkdir gone && cd gone && rmdir ../gone && exec "$0" "$1"', process.execPath, script],
          { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] },
        )
        let s = ''
        child.stdout.on('data', (d: Buffer) => (s += d))
        child.once('exit', () => resolve(s))
      })
      const results = JSON.parse(out) as unknown
      expect(results, 'the tasks hung').not.toBe('hung')
      expect(results).toHaveLength(4)
      for (const r of results as Array<{ code: string; message: string }>) {
        expect(r.code).toBe('INVALID_ARGUMENT')
        expect(r.message).toMatch(
          /the current folder of this process no longer exists .*: change to an existing folder/,
        )
      }
    } finally {
      await cleanup()
    }
  })
})
