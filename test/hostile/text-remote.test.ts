/**
 * Remote text is data: what a peer says (an error frame's message) or supplies (a ticket's text,
 * its peer id) reaches the terminal with every control character shown as an escape. A real
 * `haul get` process against a peer of our own that answers `get-header` with a hostile message.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errorFromWire, WIRE_CODES } from '../../src/errors.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { escapeControls, safeJson } from '../../src/util/safe-text.ts'
import { tempDir } from '../support/files.ts'
import { type CliRun, jsonEvents, runCli } from './support/local-cli.ts'
import { type Liar, startLiar } from './support/local-liar.ts'

const FAKE_LINE = 'received /home/you/data.bin: 1.0 GiB in 1024 chunks, every chunk verified'
const HOSTILE =
  'no such content\x1b[2J\x1b[H' + // clear the screen, cursor home
  '\x1b]0;haul: all good\x07' + // OSC: set the window title
  `\r\n\x1b[32m${FAKE_LINE}\x1b[0m\n` + // a line of its own, in green
  '\u009b2J' + // C1 CSI: clear the screen on terminals that take 8-bit controls
  '\u202etxt.exe\u202c' + // bidi override: shows reversed
  '\x7f\x00\t\u2028'

/** Characters that must never reach a terminal raw from a peer (line feeds are the CLI's own). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]/

function rawControls(b: Buffer): string[] {
  return [...b.toString('utf8')].filter((c) => RAW_CONTROL.test(c)).map((c) => escapeControls(c))
}

describe('a peer whose error message is hostile', () => {
  let liar: Liar
  let dir: string
  let cleanup: () => Promise<void>

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-text-'))
    liar = await startLiar(WIRE_CODES.CONTENT_NOT_FOUND, HOSTILE)
  })
  afterAll(async () => {
    await liar.stop()
    await cleanup()
  })

  const get = (...extra: string[]): Promise<CliRun> =>
    runCli(['get', liar.ticket, '-o', join(dir, 'out.bin'), '--workers', '1', ...extra])

  it('haul get (human output): the message is shown on the error line, escaped; no raw control byte, no line of its own', async () => {
    const before = liar.answered
    const r = await get()
    expect(r.code).toBe(1)
    expect(liar.answered).toBeGreaterThan(before) // the hostile frame was really sent
    const err = r.stderr.toString('utf8')
    expect(rawControls(r.stderr)).toEqual([])
    expect(rawControls(r.stdout)).toEqual([])
    expect(err).toContain('error [CONTENT_NOT_FOUND]: remote peer: no such content\\x1b[2J')
    expect(err).toContain('\\x1b]0;haul: all good\\x07')
    expect(err).toContain('\\u{202e}txt.exe')
    // The fake success line is part of the error line, never a line of its own.
    const lines = err.split('\n').filter((l) => l.includes('every chunk verified'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^error \[CONTENT_NOT_FOUND\]: remote peer: /)
  }, 60_000)

  it('haul get --json: one parseable event per line, the message escaped at the source, nothing raw in the stream', async () => {
    const r = await get('--json')
    expect(r.code).toBe(1)
    expect(rawControls(r.stdout)).toEqual([])
    expect(rawControls(r.stderr)).toEqual([])
    const e = jsonEvents(r).at(-1)!
    expect(e).toMatchObject({ event: 'error', code: 'CONTENT_NOT_FOUND' })
    expect(e.message).toBe(`remote peer: ${escapeControls(HOSTILE)}`)
    expect(RAW_CONTROL.test(String(e.message))).toBe(false)
  }, 60_000)
})

describe('text a ticket carries', () => {
  it('a ticket pasted with escape sequences in it: TICKET_INVALID, shown escaped', async () => {
    const r = await runCli(['get', 'haul1ab\x1b]0;pwned\x07\x1b[2Jcd', '--workers', '1'])
    expect(r.code).toBe(1)
    expect(rawControls(r.stderr)).toEqual([])
    expect(r.stderr.toString()).toMatch(
      /error \[TICKET_INVALID\]: ticket is damaged \("\\x1b" is not a base32/,
    )
  }, 60_000)

  it('a peer id with bidi overrides and C1 controls: refused, shown escaped', async () => {
    const ticket = encodeTicket({
      cid: randomBytes(32),
      peerId: '12D3Koo\u202eW\u009b2Jevil',
      addrs: ['/ip4/127.0.0.1/tcp/9'],
    })
    const r = await runCli(['get', ticket, '--workers', '1'])
    expect(r.code).not.toBe(0)
    const err = r.stderr.toString()
    expect(err).toMatch(/^\s*error \[/)
    expect(rawControls(r.stderr)).toEqual([])
    expect(err).toContain('\\u{202e}')
  }, 60_000)
})

describe('escaping rules', () => {
  it('errorFromWire escapes what the peer said and keeps it readable', () => {
    const e = errorFromWire(WIRE_CODES.CONTENT_NOT_FOUND, 'über 日本 🚀\x1b[2J\nline')
    expect(e.code).toBe('CONTENT_NOT_FOUND')
    expect(e.message).toBe('remote peer: über 日本 🚀\\x1b[2J\\x0aline')
    expect(errorFromWire(9999, '\u009b\u202e\ud800').message).toBe(
      'remote peer (code 9999): \\x9b\\u{202e}\uFFFD',
    )
  })

  it('safeJson is the same data as JSON.stringify, with nothing a terminal acts on left raw', () => {
    const value = { message: HOSTILE, n: 1, nested: ['\u202e', '\u0085', 'plain'] }
    const line = safeJson(value)
    expect(JSON.parse(line)).toEqual(value)
    expect(RAW_CONTROL.test(line)).toBe(false)
  })
})
