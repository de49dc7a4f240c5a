import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { defaultMaxOpenFiles, openFilesLimit } from '../../src/storage/fd-limit.ts'

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            256                  1048576              files
Max locked memory         8388608              8388608              bytes
`

describe('the open-file limit and the served-files cache it sizes', () => {
  it('reads the soft limit from /proc/self/limits text', () => {
    expect(openFilesLimit(LIMITS)).toBe(256)
    expect(openFilesLimit(LIMITS.replace('256   ', 'unlimited'))).toBeUndefined()
    expect(openFilesLimit('')).toBeUndefined()
  })

  it('a quarter of the limit, 16 to 256', () => {
    expect(defaultMaxOpenFiles(1024)).toBe(256)
    expect(defaultMaxOpenFiles(1048576)).toBe(256)
    expect(defaultMaxOpenFiles(256)).toBe(64)
    expect(defaultMaxOpenFiles(40)).toBe(16)
    expect(defaultMaxOpenFiles(undefined)).toBe(256)
  })

  it("follows the process's own limit (a child under ulimit -n 256)", () => {
    const code = `import('${new URL('../../src/storage/fd-limit.ts', import.meta.url).pathname}').then((m) => console.log(m.defaultMaxOpenFiles()))`
    const out = execFileSync('bash', ['-c', `ulimit -n 256 && "${process.execPath}" -e "${code}"`], {
      encoding: 'utf8',
    })
    expect(out.trim()).toBe('64')
  })
})
