import { describe, expect, it } from 'vitest'
import { distFile } from '../../src/util/dist-file.ts'

describe('distFile: a compiled file found from wherever the code runs', () => {
  it('from source, compiled and bundled code alike', () => {
    const want = 'file:///opt/haul/dist/workers/worker.js'
    expect(distFile('workers/worker.js', 'file:///opt/haul/src/workers/pool.ts').href).toBe(want)
    expect(distFile('workers/worker.js', 'file:///opt/haul/dist/workers/pool.js').href).toBe(want)
    expect(distFile('workers/worker.js', 'file:///opt/haul/dist/bundle/haul.js').href).toBe(want)
    expect(
      distFile('engine/thread/engine-worker.js', 'file:///opt/haul/dist/engine/thread/host.js').href,
    ).toBe('file:///opt/haul/dist/engine/thread/engine-worker.js')
  })

  it('a package under folders named src or dist, or with spaces in its path', () => {
    expect(distFile('w.js', 'file:///home/me/src/dist/haul/dist/bundle/haul.js').href).toBe(
      'file:///home/me/src/dist/haul/dist/w.js',
    )
    expect(distFile('w.js', 'file:///home/me/dist/src/haul/src/workers/pool.ts').href).toBe(
      'file:///home/me/dist/src/haul/dist/w.js',
    )
    expect(distFile('w.js', 'file:///home/my%20work/haul/dist/workers/pool.js').href).toBe(
      'file:///home/my%20work/haul/dist/w.js',
    )
  })

  it('refuses a place it cannot read', () => {
    expect(() => distFile('w.js', 'file:///elsewhere/pool.js')).toThrow(/cannot tell/)
  })
})
