import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, readFile, writeFile as writeText } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSwarmTicket, encodeSwarmTicket, joinTickets } from '../../src/ticket/multi-ticket.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { Running } from './run.ts'

const bin = new URL('../../bin/haul.js', import.meta.url).pathname
const lockModule = new URL('../../src/storage/dest-lock.ts', import.meta.url).pathname

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

const events = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)

describe('haul CLI (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, 3 * 1024 * 1024 + 99, 'random')
  })
  afterAll(() => cleanup())

  it('haul index prints the content id, chunk count and throughput', async () => {
    const r = await run(['index', src, '--json', '--chunking', 'fixed:1m', '--out', join(dir, 'd.haul')])
    expect(r.code, r.stderr).toBe(0)
    const done = events(r.stdout).find((e) => e.event === 'indexed')!
    expect(done).toMatchObject({ chunks: 4, bytes: 3 * 1024 * 1024 + 99, descriptor: join(dir, 'd.haul') })
    expect(done.cid).toMatch(/^b[a-z2-7]{52}$/)
    expect(done.rate).toBeGreaterThan(0)
  })

  it('haul send + haul get move a file between two processes, verified', async () => {
    let sender: ChildProcess | undefined
    try {
      sender = spawn(process.execPath, [bin, 'send', src, '--json', '--data-dir', join(dir, 'sd')], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      const lines = createInterface({ input: sender.stdout! })
      const ticket = await new Promise<string>((resolve, reject) => {
        lines.on('line', (l) => {
          const e = JSON.parse(l) as { event: string; ticket?: string }
          if (e.event === 'published') resolve(e.ticket!)
        })
        sender!.once('exit', (c) => reject(new Error(`sender exited ${c}`)))
      })
      const dest = join(dir, 'got.bin')
      const r = await run(['get', ticket, '-o', dest, '--json'])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      const evs = events(r.stdout)
      expect(evs.at(-1)).toMatchObject({
        event: 'done',
        bytes: 3 * 1024 * 1024 + 99,
        chunks: 4,
        retries: 0,
        resume: { mode: 'fresh', chunksKept: 0 },
      })
      expect(await sha256File(dest)).toBe(await sha256File(src))
      const exit = new Promise<number | null>((r2) => sender!.once('exit', r2))
      sender.kill('SIGINT')
      expect(await exit).toBe(0)
      sender = undefined
    } finally {
      sender?.kill('SIGKILL')
    }
  })

  it('haul get --no-compression fetches text from a compressing sender, verified (plain on the wire: test/serve/receiver-codecs.test.ts)', async () => {
    const text = join(dir, 'text.txt')
    await writeFile(text, 2 * 1024 * 1024 + 7, 'text')
    const sender = new Running(['send', text, '--json', '--data-dir', join(dir, 'sd-text')])
    try {
      const ticket = (await sender.event('published')).ticket as string
      const dest = join(dir, 'text.got')
      const r = await run(['get', ticket, '-o', dest, '--no-compression', '--json'])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      expect(events(r.stdout).at(-1)).toMatchObject({ event: 'done', bytes: 2 * 1024 * 1024 + 7 })
      expect(await sha256File(dest)).toBe(await sha256File(text))
    } finally {
      sender.kill()
    }
  })

  it('haul get refuses to clobber: DESTINATION_EXISTS for another file, --force replaces it, a second run finds the content present; DESTINATION_BUSY while another process writes it', async () => {
    let sender: ChildProcess | undefined
    let holder: ChildProcess | undefined
    try {
      sender = spawn(process.execPath, [bin, 'send', src, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
      const lines = createInterface({ input: sender.stdout! })
      const ticket = await new Promise<string>((resolve) => {
        lines.on('line', (l) => {
          const e = JSON.parse(l) as { event: string; ticket?: string }
          if (e.event === 'published') resolve(e.ticket!)
        })
      })
      const dest = join(dir, 'notes.txt')
      await writeText(dest, 'mine\n')
      const refused = await run(['get', ticket, '-o', dest, '--json'])
      expect(refused.code).toBe(1)
      expect(events(refused.stdout).at(-1)).toMatchObject({ event: 'error', code: 'DESTINATION_EXISTS' })
      expect(await readFile(dest, 'utf8')).toBe('mine\n')
      const forced = await run(['get', ticket, '-o', dest, '--force', '--json'])
      expect(forced.code, forced.stderr).toBe(0)
      expect(await sha256File(dest)).toBe(await sha256File(src))
      const again = await run(['get', ticket, '-o', dest])
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toContain('already holds this content')
      // Another process holds the destination's lock (as a running haul get would).
      const busyDest = join(dir, 'busy.bin')
      holder = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { DestinationLock } = await import(${JSON.stringify(lockModule)}); await DestinationLock.acquire(${JSON.stringify(busyDest)}); console.log('held'); setInterval(() => {}, 1000)`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
      await new Promise<void>((resolve) =>
        createInterface({ input: holder!.stdout! }).once('line', () => resolve()),
      )
      const busy = await run(['get', ticket, '-o', busyDest, '--json'])
      expect(busy.code).toBe(1)
      const err = events(busy.stdout).at(-1)!
      expect(err).toMatchObject({ event: 'error', code: 'DESTINATION_BUSY' })
      expect(err.message).toContain(`process ${holder.pid}`)
      // With --wait it waits; Ctrl-C then says nothing was written (this process never wrote).
      const waiting = new Running(['get', ticket, '-o', busyDest, '--wait'])
      await waiting.line(new RegExp(`^waiting: .*busy\\.bin is being written by process ${holder.pid} `))
      expect(await waiting.stop('SIGINT')).toBe(130)
      expect(waiting.lines.join('\n')).toMatch(/interrupted before the fetch began .*nothing was written/)
      // Its --json event names the destination by its absolute path, as every other event does.
      const relative = new Running(['get', ticket, '-o', 'busy.bin', '--wait', '--json'], { cwd: dir })
      expect(await relative.event('waiting')).toMatchObject({ path: busyDest })
      await relative.stop('SIGINT')
    } finally {
      sender?.kill('SIGKILL')
      holder?.kill('SIGKILL')
    }
  })

  it("the summary gives the whole command's time beside the transfer's when reaching the sender took seconds", async () => {
    // The ticket's first address takes connections and says nothing: its share of the connect
    // time (10 s over two addresses) passes before the sender's own address is dialed.
    const silent = createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const sender = new Running(['send', src, '--json', '--listen', '/ip4/127.0.0.1/tcp/0'])
    try {
      const ticket = (await sender.event('published')).ticket as string
      const t = decodeSwarmTicket(ticket)
      const port = (silent.address() as AddressInfo).port
      const slow = encodeSwarmTicket({
        ...t,
        providers: t.providers.map((p) => ({ ...p, addrs: [`/ip4/127.0.0.1/tcp/${port}`, ...p.addrs] })),
      })
      const r = await run(['get', slow, '-o', join(dir, 'slow.bin')])
      expect(r.code, r.stderr).toBe(0)
      const summary =
        /^received .*slow\.bin: .* every chunk verified, \d+:\d\d at .*\/s \((\d+):(\d\d) since haul get started\)$/.exec(
          r.stdout.trim().split('\n').at(-1) ?? '',
        )
      expect(summary, r.stdout).not.toBeNull()
      expect(Number(summary![1]) * 60 + Number(summary![2])).toBeGreaterThanOrEqual(5)
    } finally {
      sender.kill()
      silent.close()
    }
  })

  it('an unreachable peer fails with PEER_UNREACHABLE', async () => {
    const ticket = encodeTicket({
      cid: new Uint8Array(32),
      peerId: '12D3KooWSqhL1DGAvLRjTQrmdnkNyYwAexAtXm1Xu4XbwFCeFtiM',
      addrs: ['/ip4/127.0.0.1/tcp/1'],
    })
    const r = await run(['get', ticket, '-o', join(dir, 'never'), '--json'])
    expect(r.code).toBe(1)
    expect(events(r.stdout).at(-1)).toMatchObject({ event: 'error', code: 'PEER_UNREACHABLE' })
  })

  it('haul get with two tickets of one file (two sender processes) fetches from both; a ticket naming both does the same', async () => {
    const senders: ChildProcess[] = []
    try {
      const tickets: string[] = []
      for (const name of ['s1', 's2']) {
        const p = spawn(process.execPath, [bin, 'send', src, '--json', '--data-dir', join(dir, name)], {
          stdio: ['ignore', 'pipe', 'inherit'],
        })
        senders.push(p)
        const lines = createInterface({ input: p.stdout! })
        tickets.push(
          await new Promise<string>((resolve, reject) => {
            lines.on('line', (l) => {
              const e = JSON.parse(l) as { event: string; ticket?: string }
              if (e.event === 'published') resolve(e.ticket!)
            })
            p.once('exit', (c) => reject(new Error(`sender exited ${c}`)))
          }),
        )
      }
      const both = join(dir, 'both.bin')
      const r = await run(['get', ...tickets, '-o', both, '--json'])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      expect(await sha256File(both)).toBe(await sha256File(src))
      const joined = joinTickets(tickets)
      const again = join(dir, 'joined.bin')
      const r2 = await run(['get', joined, '-o', again, '--json'])
      expect(r2.code, r2.stderr + r2.stdout).toBe(0)
      expect(await sha256File(again)).toBe(await sha256File(src))
    } finally {
      for (const p of senders) p.kill('SIGKILL')
    }
  })
  it('haul send of a file whose name cannot travel in the ticket says so (a warning naming the file and the name it gets), and it still arrives', async () => {
    const odd = join(dir, 'we\\ird.txt')
    await writeFile(odd, 1024 * 1024 + 5, 'random')
    const sender = new Running(['send', odd, '--json', '--listen', '/ip4/127.0.0.1/tcp/0'])
    try {
      const published = await sender.event('published')
      const into = join(dir, 'odd-into')
      await mkdir(into)
      const r = await run(['get', published.ticket as string, '-o', `${into}/`, '--json'])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      // The sender said so by the time the file arrived, and under which name it is saved.
      const warning = sender.events.find((e) => e.event === 'warning')
      expect(warning?.message).toMatch(
        /we\\ird\.txt: receivers cannot take its name \(it has a "\\"\).*rename it/,
      )
      const name = /save it as (haul-[0-9a-f]{16}):/.exec(warning!.message as string)![1]!
      expect(events(r.stdout).at(-1)).toMatchObject({ event: 'done', path: join(into, name) })
      expect(await sha256File(join(into, name))).toBe(await sha256File(odd))
    } finally {
      sender.kill()
    }
  })
})
