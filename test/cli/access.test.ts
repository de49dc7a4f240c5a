/**
 * `haul send` and `haul seed` with and without --public, as real processes: what the ticket
 * grants, and that a receiver without the secret is told exactly what it would be told for
 * content the sender does not have.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeSwarmTicket, encodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { legacyV2, ticketText } from '../support/tickets.ts'
import { events, Running, run } from './run.ts'

const KiB = 1024

describe('haul send and seed: what the ticket grants (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let n = 0
  const procs: Running[] = []
  const start = (args: string[]): Running => {
    const p = new Running(args)
    procs.push(p)
    return p
  }
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-cli-access-'))
    src = join(dir, 'data.bin')
    await writeFile(src, 700 * KiB + 3, 'random')
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(() => cleanup())

  /** `haul get <ticket> --json` into a fresh file: its exit code, error event and the file's hash. */
  async function get(
    ticket: string,
  ): Promise<{ code: number; error?: Record<string, unknown>; sha?: string }> {
    const dest = join(dir, `out-${n++}`)
    const r = await run(['get', ticket, '-o', dest, '--json'])
    const error = events(r.stdout).find((e) => e.event === 'error')
    return { code: r.code, ...(error === undefined ? { sha: await sha256File(dest) } : { error }) }
  }

  it('send: the ticket fetches; without its secret, with a wrong one, or for unknown content: the same error', async () => {
    const sender = start(['send', src])
    const line = await sender.line(/^only holders of the ticket can fetch it/)
    expect(line).toMatch(/share it as you would a password/)
    const ticket = await sender.waitFor((_, lines) => {
      const at = lines.indexOf('ticket:')
      return at < 0 ? undefined : lines[at + 1]
    }, 'the ticket')
    const t = decodeSwarmTicket(ticket)
    const peer = t.providers[0]!
    expect(peer.secret).toHaveLength(16)
    expect(await get(ticket)).toEqual({ code: 0, sha: await sha256File(src) })

    const wrong = Uint8Array.from(peer.secret!)
    wrong[0]! ^= 1
    const probes = [
      encodeSwarmTicket({ ...t, providers: [{ peerId: peer.peerId, addrs: peer.addrs }] }),
      encodeSwarmTicket({ ...t, providers: [{ ...peer, secret: wrong }] }),
      encodeSwarmTicket({
        ...t,
        cid: new Uint8Array(32).fill(9),
        providers: [{ peerId: peer.peerId, addrs: peer.addrs }],
      }),
    ]
    const got = await Promise.all(probes.map(get))
    for (const g of got) {
      expect(g.code).toBe(1)
      expect(g.error).toEqual(got[0]!.error)
    }
    expect(got[0]!.error).toMatchObject({ code: 'CONTENT_NOT_FOUND' })
    expect(await sender.stop()).toBe(0)
  })

  it('send --public: the ticket carries no secret, and tickets of older versions fetch too', async () => {
    const sender = start(['send', src, '--public', '--json'])
    const published = await sender.event('published')
    expect(published.public).toBe(true)
    const ticket = published.ticket as string
    const { cid, providers } = decodeSwarmTicket(ticket)
    expect(providers[0]!.secret).toBeUndefined()
    const sha = await sha256File(src)
    for (const text of [
      ticket,
      ticketText(legacyV2(cid, providers)),
      encodeTicket({ cid, ...providers[0]! }),
    ]) {
      expect(await get(text)).toEqual({ code: 0, sha })
    }
    expect(await sender.stop()).toBe(0)
  })

  it('seed: a whole file is published with a secret, or without one with --public', async () => {
    for (const [flags, secret] of [
      [[], true],
      [['--public'], false],
    ] as const) {
      const seeder = start(['seed', src, '--json', ...flags])
      const published = await seeder.event('published')
      expect(published.public).toBe(!secret)
      const ticket = published.ticket as string
      expect(decodeSwarmTicket(ticket).providers[0]!.secret !== undefined).toBe(secret)
      // A public ticket fetching is the test above; the one with a secret fetches here.
      if (secret) expect(await get(ticket)).toEqual({ code: 0, sha: await sha256File(src) })
      expect(await seeder.stop()).toBe(0)
    }
  })

  it('--public is an option of send and seed only', async () => {
    const r = await run(['get', 'haul1x', '--public'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--public is not an option of haul get/)
  })
})
