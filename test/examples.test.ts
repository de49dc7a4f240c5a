import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'

/** Runs `examples/<name>` as its own process, the way the README says to run it. */
function runExample(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = new URL(`../examples/${name}`, import.meta.url).pathname
  return new Promise((resolve, reject) => {
    // process.execPath is the Node 24 running the tests; it strips the types of the .ts file.
    const child = spawn(process.execPath, ['--no-warnings', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('examples/ run to completion (real processes)', () => {
  it('send-and-fetch.ts publishes, fetches by ticket and finds the copy identical', async () => {
    const r = await runExample('send-and-fetch.ts')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^fetched 6291579 bytes in 7 chunks \(fresh\), identical to the source$/m)
  })

  it('send-folder.ts publishes a folder and recreates it, file by file', async () => {
    const r = await runExample('send-folder.ts')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^published photos: 4 files, 2100013 bytes in 3 chunks$/m)
    expect(r.stdout.match(/^placed \S+ \(\d+ bytes\)$/gm)).toHaveLength(4)
    expect(r.stdout).toMatch(
      /^fetched 4 files \(2100013 bytes\) into 1 folder\(s\), identical to the source$/m,
    )
  })

  it('progress-and-cancel.ts cancels a fetch and resumes it from the journal', async () => {
    const r = await runExample('progress-and-cancel.ts')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^progress \d+\/12 chunks/m)
    expect(r.stdout).toMatch(/^cancelled: status cancelled/m)
    expect(r.stdout).toMatch(/^resumed from the journal: kept [1-9]\d* chunks/m)
    expect(r.stdout).toMatch(/^done: 12582912 bytes, identical to the source$/m)
  })

  it('multi-peer.ts fetches one file from two seeders at once', async () => {
    const r = await runExample('multi-peer.ts')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^fetched 16777216 bytes in [\d.]+ s from 2 peers$/m)
    expect(r.stdout.match(/^ {2}peer \S+: \d+ MiB verified$/gm)).toHaveLength(2)
  })

  it('worker-thread.ts fetches between two engines in worker threads, errors keeping their class', async () => {
    const r = await runExample('worker-thread.ts')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^fetched 16777216 bytes, with progress calls here; status done$/m)
    expect(r.stdout).toMatch(/^identical to the source$/m)
    expect(r.stdout).toMatch(/^publishing a missing file: SourceInvalidError \[SOURCE_INVALID\]$/m)
  })

  it("the README's embedding example is the code of send-and-fetch.ts", async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    const example = await readFile(new URL('../examples/send-and-fetch.ts', import.meta.url), 'utf8')
    const snippet = readme.match(/```ts\n(import \{ createEngine[\s\S]*?)```/)?.[1]
    expect(snippet, 'a ts block importing createEngine in README.md').toBeDefined()
    // Every line but the import (the README imports the package by name) appears in the example.
    const lines = snippet!.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('import '))
    expect(lines.length).toBeGreaterThan(10)
    for (const line of lines) expect(example, `README line not in the example: ${line}`).toContain(line)
  })
})
