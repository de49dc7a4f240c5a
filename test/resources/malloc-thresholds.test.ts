import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'

const MODULE = new URL('../../src/resources/malloc-thresholds.ts', import.meta.url).pathname
const glibc =
  process.platform === 'linux' &&
  (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime !==
    undefined

/**
 * A child process allocates 64 buffers of 64 KiB (what Noise allocates per record), frees them
 * all, 100 times over, and reports the page faults it took meanwhile: each page the heap's top
 * gave back to the kernel and took again is one.
 */
function faults(raise: boolean): number {
  const script = `
    ${raise ? `(await import(${JSON.stringify(MODULE)})).raiseMallocThresholds()` : ''}
    const { readFileSync } = await import('node:fs')
    const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7])
    const before = minflt()
    for (let round = 0; round < 100; round++) {
      const bufs = Array.from({ length: 64 }, () => new Uint8Array(64 * 1024).fill(1))
      for (const b of bufs) b.buffer.transfer(0)
    }
    process.stdout.write(String(minflt() - before))
  `
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }))
}

describe('raiseMallocThresholds', () => {
  it.runIf(glibc)('keeps glibc from giving the heap top back to the kernel after each burst of frees', () => {
    const plain = faults(false)
    const raised = faults(true)
    // 100 rounds of 4 MiB: 8,500–50,000 faults here when the top goes back after many of them
    // (8,500–8,600 in full-suite runs on a loaded machine, whatever the rounds), about one round's
    // (1,400–1,800) when it stays.
    expect(plain).toBeGreaterThan(8_000)
    expect(raised).toBeLessThan(plain / 4)
  })

  it('may be called again, doing nothing more', async () => {
    const { raiseMallocThresholds } = await import('../../src/resources/malloc-thresholds.ts')
    raiseMallocThresholds()
    expect(() => raiseMallocThresholds()).not.toThrow()
  })
})
