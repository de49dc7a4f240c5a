import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { resolveLoadTestOptions } from '../../src/loadtest/options.ts'
import { ENGINE_NODE_FLAGS } from '../../src/process-flags.ts'

describe('engine process flags', () => {
  it('the haul bin runs Node with exactly ENGINE_NODE_FLAGS', async () => {
    const bin = await readFile(new URL('../../bin/haul.js', import.meta.url), 'utf8')
    const shebang = bin.split('\n', 1)[0]!
    expect(shebang.startsWith('#!/usr/bin/env -S node ')).toBe(true)
    expect(shebang.slice('#!/usr/bin/env -S node '.length).split(' ')).toEqual([...ENGINE_NODE_FLAGS])
  })

  it('load-test engine processes get them unless told otherwise, and Node accepts them', () => {
    expect(resolveLoadTestOptions({}).execArgv).toEqual([...ENGINE_NODE_FLAGS])
    expect(resolveLoadTestOptions({ execArgv: ['--trace-gc'] }).execArgv).toEqual(['--trace-gc'])
    // Node exits with 9 ("bad option") on a flag it or V8 does not know.
    const run = spawnSync(process.execPath, [...ENGINE_NODE_FLAGS, '-e', 'process.exit(0)'], {
      encoding: 'utf8',
    })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
  })
})
