import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { events, Running, run } from './run.ts'

const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const SOME_CID = `b${'a'.repeat(52)}`

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).map((c) => c()))
})

function running(args: string[]): Running {
  const r = new Running(args)
  cleanups.push(async () => {
    r.kill()
    await r.exited
  })
  return r
}

describe('haul on a DHT', () => {
  it('haul send --dht prints how to fetch by content id; haul get <content id> --bootstrap <that> gets it byte-identical; --provide then serves it to a third peer after the sender stopped', async () => {
    const t = await tempDir('haul-cli-dht-')
    cleanups.push(t.cleanup)
    const file = join(t.dir, 'data.bin')
    await writeFile(file, 5 * 1024 * 1024 + 3, 'random', 3)

    const human = running(['send', file, '--dht', '--listen', LOOPBACK])
    const line = await human.line(/^or, on the DHT: +haul get b\S+ --bootstrap \S+$/)
    const [, cid, bootstrap] = /haul get (b\S+) --bootstrap (\S+)$/.exec(line)!
    expect(human.lines.join('\n')).toContain('public (announced on the DHT)')

    const out = join(t.dir, 'got.bin')
    const provider = running(['get', cid!, '--bootstrap', bootstrap!, '-o', out, '--provide', '--json'])
    // How others reach it comes as the fetch starts, before the file is whole.
    const early = await provider.event('provider')
    const providing = await provider.event('providing')
    expect(early).toMatchObject({ cid, peerId: providing.peerId, addresses: providing.addresses })
    const order = provider.events.map((e) => e.event)
    expect(order.indexOf('provider')).toBeLessThan(order.indexOf('done'))
    expect(providing.cid).toBe(cid)
    expect(providing.public).toBe(true)
    expect(await sha256File(out)).toBe(await sha256File(file))
    const done = provider.events.find((e) => e.event === 'done')!
    expect(done.bytes).toBe(5 * 1024 * 1024 + 3)

    // The sender goes: the providing receiver is all that has the file, and a DHT peer itself.
    expect(await human.stop()).toBe(0)
    const again = join(t.dir, 'again.bin')
    const through = (providing.addresses as string[])[0]!
    const third = await run(['get', cid!, '--bootstrap', through, '-o', again, '--json'])
    expect(third.code, third.stdout + third.stderr).toBe(0)
    expect(await sha256File(again)).toBe(await sha256File(file))
    expect(events(third.stdout).find((e) => e.event === 'done')?.bytes).toBe(5 * 1024 * 1024 + 3)
    expect(await provider.stop()).toBe(0)
    // Stopped, it says what it served: the whole file to the third peer, once it was whole.
    const ended = provider.events.filter((e) => e.event === 'transfer-ended')
    expect(ended.map((e) => e.outcome)).toContain('complete')
    const stopped = provider.events.find((e) => e.event === 'stopped')
    expect(stopped).toMatchObject({ cutOff: 0 })
    expect(stopped!.bytesServed).toBeGreaterThanOrEqual(5 * 1024 * 1024 + 3)
    expect(stopped!.transfers).toBeGreaterThanOrEqual(1)
  }, 120_000)

  it('get --provide --data-dir, stopped and run again, comes back with its peer id and port: the address others were given still reaches it', async () => {
    const t = await tempDir('haul-cli-dht-provider-')
    cleanups.push(t.cleanup)
    const file = join(t.dir, 'data.bin')
    await writeFile(file, 2 * 1024 * 1024 + 5, 'random', 4)
    const sender = running(['send', file, '--dht', '--listen', LOOPBACK, '--json'])
    const published = await sender.event('published')
    const cid = published.cid as string
    const bootstrap = (published.addresses as string[])[0]!
    const out = join(t.dir, 'got.bin')
    const args = [
      'get',
      cid,
      '--bootstrap',
      bootstrap,
      '-o',
      out,
      '--provide',
      '--json',
      '--listen',
      LOOPBACK,
    ]
    const dataDir = ['--data-dir', join(t.dir, 'provider-data')]
    const first = running([...args, ...dataDir])
    const before = await first.event('provider')
    await first.event('providing')
    expect(await first.stop()).toBe(0)
    const again = running([...args, ...dataDir])
    const after = await again.event('provider')
    expect(after.peerId).toBe(before.peerId)
    expect(after.addresses).toEqual(before.addresses)
    await again.event('providing')
    expect(await again.stop()).toBe(0)
  }, 60_000)

  it('a content id without --bootstrap or --dht, and a bootstrap address without its peer id, are usage errors naming the flag (exit 2)', async () => {
    const alone = await run(['get', SOME_CID])
    expect(alone.code).toBe(2)
    expect(alone.stderr).toContain('--bootstrap')
    const bad = await run(['get', SOME_CID, '--bootstrap', '/ip4/127.0.0.1/tcp/4001'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--bootstrap: .*\/p2p\/<peer id>/)
    const provide = await run(['get', 'haul1aaaa', '--provide'])
    expect(provide.code).toBe(2)
    expect(provide.stderr).toContain('--provide')
  }, 60_000)
})
