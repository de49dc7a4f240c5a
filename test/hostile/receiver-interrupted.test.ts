/**
 * `haul get` stopped while it retries a peer that never gave the header says so, not that it
 * was waiting for its turn or the destination. A real process against a peer of our own that
 * answers every get-header with TOO_MANY_REQUESTS (retried with back-off).
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WIRE_CODES } from '../../src/errors.ts'
import { tempDir } from '../support/files.ts'
import { type Liar, startLiar } from './support/local-liar.ts'

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))

/** Runs `haul get`, sends SIGTERM once a line matches `when`, and returns its exit code and lines. */
async function stopWhen(args: string[], when: RegExp): Promise<{ code: number | null; lines: string[] }> {
  const child = spawn(process.execPath, ['--no-warnings', MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line)
    if (when.test(line)) child.kill('SIGTERM')
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  try {
    return { code: await exited, lines }
  } finally {
    clearTimeout(timer)
  }
}

describe('haul get interrupted while it retries a peer', () => {
  let liar: Liar
  let dir: string
  let cleanup: () => Promise<void>

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-interrupted-'))
    liar = await startLiar(WIRE_CODES.TOO_MANY_REQUESTS, 'busy')
  })
  afterAll(async () => {
    await liar.stop()
    await cleanup()
  })

  it('human output: the line says it was retrying the peer, and with which failure', async () => {
    const r = await stopWhen(
      ['get', liar.ticket, '-o', join(dir, 'h.out'), '--workers', '1'],
      /^connection problem/,
    )
    expect(r.code).toBe(130)
    const last = r.lines.at(-1)!
    expect(last).toMatch(
      /^interrupted before the fetch began \(it was retrying the peer: \d+ failed attempts? in a row, the last \[TOO_MANY_REQUESTS\]\): nothing was written$/,
    )
    expect(last).not.toContain('its turn')
  }, 60_000)

  it('--json: the interrupted event carries the retry it was in', async () => {
    const r = await stopWhen(
      ['get', liar.ticket, '-o', join(dir, 'j.out'), '--workers', '1', '--json'],
      /"event":"retry"/,
    )
    expect(r.code).toBe(130)
    const e = JSON.parse(r.lines.at(-1)!) as Record<string, unknown>
    expect(e).toMatchObject({ event: 'interrupted', retrying: { code: 'TOO_MANY_REQUESTS' } })
    expect((e.retrying as { attempt: number }).attempt).toBeGreaterThanOrEqual(1)
  }, 60_000)
})
