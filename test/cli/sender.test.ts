import { readdir, readFile, truncate, writeFile as writeFileText } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { Running, run } from './run.ts'

const MiB = 1024 * 1024
const SIZE = 3 * MiB + 99

/** What `haul send` shows while serving: the peers, their transfers, and the summary on exit. */
describe('haul send shows what it serves (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  let n = 0
  const procs: Running[] = []
  /** Each run its own data folder: a descriptor kept by an earlier one would skip indexing. */
  const start = (args: string[]): Running => {
    const own = args[0] === 'get' ? [] : ['--data-dir', join(dir, `data-dir${n++}`)]
    const p = new Running([...args, ...own])
    procs.push(p)
    return p
  }
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, SIZE, 'random')
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(() => cleanup())

  const ticketOf = async (sender: Running): Promise<string> =>
    sender.json
      ? ((await sender.event('published')).ticket as string)
      : await sender.waitFor((_, lines) => {
          const at = lines.indexOf('ticket:')
          return at < 0 ? undefined : lines[at + 1]
        }, 'the ticket')

  it('--json: the peer, its transfer with the bytes served adding up to the file, its end, and the totals on Ctrl-C', async () => {
    const sender = start(['send', src, '--json'])
    const published = await sender.event('published')
    const dest = join(dir, `copy${n++}`)
    const got = await run(['get', published.ticket as string, '-o', dest, '--json'])
    expect(got.code, got.stderr + got.stdout).toBe(0)
    expect(await sha256File(dest)).toBe(await sha256File(src))
    const ended = await sender.event('transfer-ended')
    expect(await sender.stop('SIGINT')).toBe(0)

    // Every line is one JSON event.
    expect(sender.events).toHaveLength(sender.lines.length)
    const [connected, ...again] = sender.events.filter((e) => e.event === 'peer-connected')
    expect(again).toEqual([])
    expect(connected!.peerId).toMatch(/^12D3Koo/)
    expect(connected!.address).toMatch(/^\/ip[46]\/[^/]+\/tcp\/\d+/)
    const started = sender.events.filter((e) => e.event === 'transfer-started')
    expect(started).toEqual([
      {
        event: 'transfer-started',
        transfer: 1, // numbered in this run; its stream's `session` beside it
        session: ended.session,
        peerId: connected!.peerId,
        cid: published.cid,
        path: src,
        totalBytes: SIZE,
        partial: false,
      },
    ])
    const serving = sender.events.filter((e) => e.event === 'serving')
    expect(serving.length).toBeGreaterThan(0)
    const served = serving.map((e) => e.bytesServed as number)
    expect(served).toEqual([...served].sort((a, b) => a - b))
    expect(served.at(-1)).toBe(SIZE)
    expect(ended).toMatchObject({
      outcome: 'complete',
      bytesServed: SIZE,
      totalBytes: SIZE,
      cid: published.cid,
    })
    expect(sender.events.at(-1)).toEqual({
      event: 'stopped',
      bytesServed: SIZE,
      peers: 1,
      transfers: 1,
      cutOff: 0,
      cutOffByPeer: 0,
    })
  })

  it("its port held by another program: a warning event (a warning line without --json), not Node's own form", async () => {
    const data = join(dir, 'held-port-data')
    const first = new Running(['send', src, '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', data])
    procs.push(first)
    await first.event('published')
    const port = Number(/ip4 (\d+)/.exec(await readFile(join(data, 'listen-port'), 'utf8'))?.[1])
    expect(await first.stop()).toBe(0)
    const squatter = createServer()
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve))
    try {
      for (const json of [true, false]) {
        const args = ['send', src, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', data]
        const again = new Running(json ? [...args, '--json'] : args)
        procs.push(again)
        if (json) {
          const warning = await again.event('warning')
          expect(warning.message).toMatch(new RegExp(`could not listen on the ports .*\\(tcp ${port}\\b`))
          await again.event('published')
        } else {
          await again.line(/^warning: could not listen on the ports/)
          await again.line(/^ticket:$/)
        }
        expect(await again.stop()).toBe(0)
        expect(again.stderr).not.toContain('(node:')
      }
    } finally {
      await new Promise((resolve) => squatter.close(resolve))
    }
  })

  it('human output: a line per peer, per transfer and its end, and the summary', async () => {
    const sender = start(['send', src])
    const ticket = await ticketOf(sender)
    expect(sender.lines[0]).toBe(`serving ${src} (3.0 MiB, 4 chunks)`)
    const got = await run(['get', ticket, '-o', join(dir, `copy${n++}`)])
    expect(got.code, got.stderr).toBe(0)
    await sender.line(/ finished /)
    expect(await sender.stop('SIGTERM')).toBe(0)
    const after = sender.lines.slice(sender.lines.indexOf('Ctrl-C stops serving.') + 1).filter(Boolean)
    expect(after).toHaveLength(4)
    expect(after[0]).toMatch(/^peer 12D3…\w{7} connected from \/ip[46]\/[^/]+\/tcp\/\d+$/)
    const peer = after[0]!.split(' ')[1]!
    expect(after[1]).toBe(`${peer} fetching data.bin (3.0 MiB)`)
    expect(after[2]).toMatch(
      new RegExp(
        `^${peer} finished data\\.bin: served 3\\.0 MiB of 3\\.0 MiB in \\d+:\\d\\d at \\d+\\.\\d MiB/s$`,
      ),
    )
    expect(after[3]).toBe('stopped: served 3.0 MiB to 1 peer in 1 transfer; no transfer was in progress')
  })

  it.each([true, false])(
    'Ctrl-C while a peer fetches: the transfer is cut off and the summary says so (json: %s); the interrupted get exits 130',
    async (json) => {
      // Slow enough that the fetch is still running when the sender stops.
      const sender = start(['send', src, '--upload-limit', '256k', ...(json ? ['--json'] : [])])
      const ticket = await ticketOf(sender)
      const get = start(['get', ticket, '-o', join(dir, `cut${n++}`), '--json'])
      await get.event('progress', (e) => (e.bytesDone as number) > 0)
      expect(await sender.stop('SIGINT')).toBe(0)
      if (json) {
        const ended = sender.events.find((e) => e.event === 'transfer-ended')
        expect(ended).toMatchObject({ outcome: 'cut-off', reason: 'stopped' })
        expect(ended!.bytesServed).toBeLessThan(SIZE)
        expect(sender.events.at(-1)).toMatchObject({ event: 'stopped', peers: 1, transfers: 1, cutOff: 1 })
      } else {
        expect(sender.lines).toContainEqual(
          expect.stringMatching(/ cut off data\.bin after .* of 3\.0 MiB by the stop$/),
        )
        expect(sender.lines.at(-1)).toMatch(
          /^stopped: served .* to 1 peer in 1 transfer; 1 transfer in progress was cut off$/,
        )
      }
      expect(await get.stop('SIGINT')).toBe(130)
      expect(get.events.at(-1)).toMatchObject({ event: 'interrupted' })
    },
  )

  it('Ctrl-C while a peer that paces itself (--max-rate) fetches, between its requests: still cut off', async () => {
    const sender = start(['send', src, '--json'])
    const ticket = await ticketOf(sender)
    const get = start(['get', ticket, '-o', join(dir, `paced${n++}`), '--json', '--max-rate', '256k'])
    await get.event('progress', (e) => (e.bytesDone as number) > 0)
    expect(await sender.stop('SIGINT')).toBe(0)
    const ended = sender.events.find((e) => e.event === 'transfer-ended')
    expect(ended).toMatchObject({ outcome: 'cut-off', reason: 'stopped' })
    expect(sender.events.at(-1)).toMatchObject({ event: 'stopped', transfers: 1, cutOff: 1 })
    expect(await get.stop('SIGINT')).toBe(130)
  })

  it('a relay that restarts: send says it lost its slot, and that it holds it again', async () => {
    const relayArgs = [
      'relay',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--data-dir',
      join(dir, 'relay'),
      '--json',
    ]
    let relay = new Running(relayArgs)
    procs.push(relay)
    const addr = ((await relay.event('relay')).addresses as string[])[0]!
    const sender = start(['send', src, '--listen', '/ip4/127.0.0.1/tcp/0', '--relay', addr, '--json'])
    await sender.event('published')
    relay.kill()
    await relay.exited
    expect(await sender.event('relay', (e) => e.state === 'lost')).toMatchObject({ relay: addr })
    // The same identity and port (its data folder): the address the sender was given.
    relay = new Running(relayArgs)
    procs.push(relay)
    expect(((await relay.event('relay')).addresses as string[])[0]).toBe(addr)
    expect(await sender.event('relay', (e) => e.state === 'reserved')).toMatchObject({ relay: addr })
  })

  it('a file changed while served: the get fails CONTENT_CHANGED, and send says it no longer serves it', async () => {
    for (const json of [false, true]) {
      const changing = join(dir, `changing${n++}.bin`)
      await writeFile(changing, SIZE, 'random', 5)
      const sender = start(['send', changing, ...(json ? ['--json'] : [])])
      const ticket = await ticketOf(sender)
      await writeFile(changing, SIZE, 'random', 6)
      const got = await run(['get', ticket, '-o', join(dir, `changed${n++}`)])
      expect(got.code).toBe(1)
      expect(got.stderr).toContain('CONTENT_CHANGED')
      if (json) {
        const e = await sender.event('withdrawn')
        expect(e).toMatchObject({ code: 'CONTENT_CHANGED', path: changing })
      } else {
        await sender.line(/^error \[CONTENT_CHANGED\]: .*changed since it was indexed.*\(no longer served\)$/)
      }
      expect(await sender.stop('SIGINT')).toBe(0)
    }
  })

  it('a file replaced while send was stopped: started again on its --data-dir, the old ticket gets CONTENT_CHANGED at once', async () => {
    const replaced = join(dir, 'replaced.bin')
    await writeFile(replaced, SIZE, 'random')
    const dataDir = join(dir, `data-dir${n++}`)
    const send = (): Running => {
      const p = new Running([
        'send',
        replaced,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--data-dir',
        dataDir,
        '--json',
      ])
      procs.push(p)
      return p
    }
    const first = send()
    const ticket = await ticketOf(first)
    expect(await first.stop('SIGINT')).toBe(0)
    await writeFile(replaced, SIZE, 'random')
    const again = send()
    expect(await ticketOf(again)).not.toBe(ticket)
    const got = await run(['get', ticket, '-o', join(dir, 'replaced.out')])
    expect(got.code).toBe(1)
    expect(got.stderr).toMatch(/CONTENT_CHANGED.*ask the sender to publish it again for a new ticket/)
    expect(got.stderr).not.toContain('retry')
  })

  it('interrupted while indexing, send and index exit 130', async () => {
    const big = join(dir, 'sparse.bin')
    // Sparse: reading it costs no disk, hashing it takes long enough to be interrupted.
    await writeFile(big, 1, 'random')
    await truncate(big, 16 * 1024 * MiB)
    // index's -o holds a file it may replace (--force): an interrupted index leaves it whole.
    const kept = join(dir, 'sparse.haul')
    await writeFileText(kept, 'kept\n')
    for (const command of ['send', 'index']) {
      const p = start([command, big, '--json', ...(command === 'index' ? ['-o', kept, '--force'] : [])])
      await p.event('indexing')
      expect(await p.stop('SIGINT'), command).toBe(130)
      expect(p.events.at(-1), command).toMatchObject({ event: 'interrupted' })
    }
    expect(await readFile(kept, 'utf8')).toBe('kept\n')
    expect((await readdir(dir)).filter((n) => n.startsWith('sparse.haul.'))).toEqual([])
  })
})
