import { copyFile } from 'node:fs/promises'
import { type AddressInfo, connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cidToString } from '../../src/descriptor/cid.ts'
import { type Engine, engineInternals } from '../../src/engine/engine.ts'
import { createEngine, type EngineOptions } from '../../src/index.ts'
import { contentKey } from '../../src/routing/content-key.ts'
import { Running } from '../cli/run.ts'
import { dhtEngines, LOOPBACK, ONE_HOST } from '../support/dht-engines.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { sleep } from '../support/wait.ts'

const MiB = 1024 * 1024
const { stops, engine } = dhtEngines()

async function folder(): Promise<string> {
  const t = await tempDir('haul-dht-')
  stops.push(t.cleanup)
  return t.dir
}

/** `n` engines joined to one DHT: the first starts it, the others bootstrap from it. */
async function dht(n: number, opts: EngineOptions = {}): Promise<{ nodes: Engine[]; bootstrap: string[] }> {
  const first = await engine({ ...opts, dht: { enabled: true } })
  const bootstrap = [first.addresses[0]!]
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => engine({ ...opts, dht: { bootstrap } })))
  return { nodes: [first, ...rest], bootstrap }
}

/** `count` copies of one random file (without a data folder, each publish writes its descriptor beside its file). */
async function copies(dir: string, count: number, size: number): Promise<string[]> {
  const paths = Array.from({ length: count }, (_, i) => join(dir, `copy-${i}.bin`))
  await writeFile(paths[0]!, size, 'random', 22)
  for (const p of paths.slice(1)) await copyFile(paths[0]!, p)
  return paths
}

describe('providers found on the DHT', () => {
  it('16 engines form a DHT; 4 publish one file; a receiver that knows only the content id and one bootstrap address gets it byte-identical, with bytes from at least 3 of them', async () => {
    const dir = await folder()
    const files = await copies(dir, 4, 24 * MiB + 333)
    // Upload-limited seeders: no one of them can carry the whole transfer before the others join.
    const { nodes } = await dht(16, { limits: { uploadBytesPerSec: 2 * MiB } })
    const seeders = nodes.slice(1, 5)
    const published = await Promise.all(seeders.map((s, i) => s.publish(files[i]!)))
    expect(new Set(published.map((p) => cidToString(p.index.cid))).size).toBe(1)
    expect(await Promise.all(published.map((p) => p.announced))).toEqual([true, true, true, true])

    const cid = cidToString(published[0]!.index.cid)
    // The receiver is an engine of its own, told one bootstrap address: the last of the 16.
    const receiver = await engine({ dht: { bootstrap: [nodes[15]!.addresses[0]!], refreshMs: 500 } })
    const out = join(dir, 'received.bin')
    const result = await receiver.fetch(cid, out).result
    expect(await sha256File(out)).toBe(await sha256File(files[0]!))
    const seederIds = new Set(seeders.map((s) => s.peerId))
    const gave = result.swarm!.peers.filter((p) => seederIds.has(p.peerId) && p.verifiedBytes > 0)
    expect(gave.length).toBeGreaterThanOrEqual(3)
    expect(result.swarm!.peers.reduce((n, p) => n + p.verifiedBytes, 0)).toBe(24 * MiB + 333)
  }, 120_000)

  it('a seeder killed mid-transfer (a haul send process, SIGKILL): the receiver finishes from the others', async () => {
    const dir = await folder()
    const files = await copies(dir, 3, 32 * MiB)
    const { nodes, bootstrap } = await dht(6, { limits: { uploadBytesPerSec: 3 * MiB } })
    await Promise.all([nodes[1]!.publish(files[0]!), nodes[2]!.publish(files[1]!)])
    const victim = new Running([
      'send',
      files[2]!,
      '--bootstrap',
      bootstrap[0]!,
      '--listen',
      LOOPBACK[0]!,
      '--upload-limit',
      '3M',
      '--json',
    ])
    stops.push(async () => {
      victim.proc.kill('SIGKILL')
      await victim.exited
    })
    const announced = await victim.waitFor((ev) => ev.find((e) => e.event === 'announced'), 'announced')
    expect(announced.reached).toBe(true)
    const published = victim.events.find((e) => e.event === 'published')!
    const receiver = await engine({ dht: { bootstrap, refreshMs: 500 } })
    const out = join(dir, 'received.bin')
    const handle = receiver.fetch(published.cid as string, out)
    // Killed once it has served part of the file.
    const killedAt = await new Promise<number>((resolve) => {
      const timer = setInterval(() => {
        const fromVictim = handle.swarmStats()?.peers.find((p) => p.peerId === published.peerId)
        if ((fromVictim?.verifiedBytes ?? 0) >= 2 * MiB) {
          clearInterval(timer)
          victim.proc.kill('SIGKILL')
          resolve(handle.progress()?.bytesDone ?? 0)
        }
      }, 20)
    })
    expect(killedAt).toBeLessThan(32 * MiB)
    const result = await handle.result
    expect(await sha256File(out)).toBe(await sha256File(files[0]!))
    expect(result.swarm!.peers.find((p) => p.peerId === published.peerId)?.out).toBeDefined()
  }, 120_000)

  it('engines in worker threads (thread: worker): publish says whether the announcement reached a peer, fetch by content id works across the boundary', async () => {
    const dir = await folder()
    const [file] = await copies(dir, 1, 3 * MiB + 5)
    const boot = await engine({ dht: { enabled: true } })
    const options = {
      workers: 1,
      listen: LOOPBACK,
      network: ONE_HOST,
      dht: { bootstrap: [boot.addresses[0]!] },
    }
    const seeder = await createEngine({ ...options, thread: 'worker' })
    stops.push(() => seeder.stop())
    const receiver = await createEngine({ ...options, thread: 'worker' })
    stops.push(() => receiver.stop())
    const published = await seeder.publish(file!)
    expect(await published.announced).toBe(true)
    const out = join(dir, 'out.bin')
    const r = await receiver.fetch(cidToString(published.index.cid), out).result
    expect(r.bytes).toBe(3 * MiB + 5)
    expect(await sha256File(out)).toBe(await sha256File(file!))
  }, 90_000)

  it('an announcement goes out again as a DHT of fewer than K peers grows: the peers that joined later, together or one by one, hold the record', async () => {
    const dir = await folder()
    const [file] = await copies(dir, 1, 64 * 1024)
    const seeder = await engine({ dht: { enabled: true } })
    const bootstrap = [seeder.addresses[0]!]
    await engine({ dht: { bootstrap } })
    const published = await seeder.publish(file!)
    expect(await published.announced).toBe(true)
    const holds = async (node: Engine): Promise<void> => {
      const deadline = Date.now() + 20_000
      while (!(await holdsRecord(node, published.index.cid, seeder.peerId))) {
        if (Date.now() > deadline) throw new Error(`${node.peerId} never got the record`)
        await sleep(200)
      }
    }
    // Three together: the table grows 1 → 4 while announcements go out.
    for (const node of await Promise.all(Array.from({ length: 3 }, () => engine({ dht: { bootstrap } }))))
      await holds(node)
    // Then one at a time (4 → 5 → 6: growth short of a doubling).
    for (let i = 0; i < 2; i++) await holds(await engine({ dht: { bootstrap } }))
  }, 90_000)

  it('the bootstrap peer is asked directly: content it serves but never announced is fetched by content id', async () => {
    const dir = await folder()
    const [file] = await copies(dir, 1, 2 * MiB + 9)
    const { nodes, bootstrap } = await dht(3)
    const { index } = await nodes[0]!.publish(file!, { announce: false, public: true })
    const receiver = await engine({ dht: { bootstrap, lookupMs: 5_000 } })
    const out = join(dir, 'asked.bin')
    const result = await receiver.fetch(cidToString(index.cid), out).result
    expect(await sha256File(out)).toBe(await sha256File(file!))
    expect(result.swarm!.peers.map((p) => [p.peerId, p.verifiedBytes])).toEqual([
      [nodes[0]!.peerId, 2 * MiB + 9],
    ])
  }, 60_000)

  it('a content id with no provider on the DHT fails with NO_PROVIDER after dht.lookupMs', async () => {
    const dir = await folder()
    const { bootstrap } = await dht(3)
    const receiver = await engine({ dht: { bootstrap, lookupMs: 1_500 } })
    const unknown = cidToString(new Uint8Array(32).fill(7))
    await expect(receiver.fetch(unknown, join(dir, 'none.bin')).result).rejects.toMatchObject({
      code: 'NO_PROVIDER',
    })
  }, 60_000)

  it('a fetch with provide: the receiver serves the file once it has it, and a later receiver finds it there alone', async () => {
    const dir = await folder()
    const [file] = await copies(dir, 1, 6 * MiB + 1)
    const { nodes, bootstrap } = await dht(4)
    const seeder = nodes[1]!
    const { index } = await seeder.publish(file!)
    const cid = cidToString(index.cid)
    const first = await engine({ dht: { bootstrap } })
    await first.fetch(cid, join(dir, 'first.bin'), { provide: true }).result
    // The seeder leaves: only the first receiver has the file now.
    seeder.unpublish(index.cid)
    await seeder.stop()
    const second = await engine({ dht: { bootstrap, refreshMs: 300 } })
    const result = await second.fetch(cid, join(dir, 'second.bin')).result
    expect(await sha256File(join(dir, 'second.bin'))).toBe(await sha256File(file!))
    const fromFirst = result.swarm!.peers.find((p) => p.peerId === first.peerId)
    expect(fromFirst?.verifiedBytes).toBe(6 * MiB + 1)
  }, 90_000)

  it('a fetch with provide on a DHT of no other peer is done once the file is in place, not once its announcement reaches a peer', async () => {
    const dir = await folder()
    const [file] = await copies(dir, 1, 2 * MiB + 5)
    const sender = await engine()
    const { ticket, index } = await sender.publish(file!)
    const receiver = await engine({ dht: { enabled: true } })
    await receiver.fetch(ticket, join(dir, 'provided.bin'), { provide: true }).result
    // The same content published again shares its announcement (one per content id): still on
    // its way, since no peer can take it.
    const again = await receiver.publish(join(dir, 'provided.bin'))
    expect(Buffer.from(again.index.cid).equals(Buffer.from(index.cid))).toBe(true)
    let settled = false
    void again.announced?.then(() => {
      settled = true
    })
    await sleep(50)
    expect(again.announced).toBeDefined()
    expect(settled).toBe(false)
  }, 60_000)

  it('a DHT fetch without the DHT, or provide without it, is refused as bad input', async () => {
    const plain = await engine()
    const cid = cidToString(new Uint8Array(32).fill(1))
    expect(() => plain.fetch(cid, '/tmp/never')).toThrow(/DHT/)
    expect(() =>
      plain.fetch(
        'haul1amaakzromjuw5jaokbslw7qio2yt5z3z4ecvb5dqzye7pyp4bknkwtizus6mqzu5ae2dcmsegnfw632xjy2tmvthmu2xmmshgzito4btgzdvmrkekn3tqrjuojhgq4juknzws5dhjnwumwbvnbvvc5abaamc62lqgqxtcmrxfyyc4mbogexxiy3qf42dmnbwgf4cbjun',
        '/tmp/never',
        { provide: true },
      ),
    ).toThrow(/DHT/)
    await expect(createEngine({ dht: { bootstrap: ['/ip4/127.0.0.1/tcp/1'] } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
  })

  it('a bootstrap peer that does not answer fails the start with PEER_UNREACHABLE naming it', async () => {
    const unused = '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWN56Vge5v2G6Q7p36GVEDSw8E4rNhq4SsitgKmFX5hkQt'
    const err = await createEngine({ listen: LOOPBACK, workers: 1, dht: { bootstrap: [unused] } }).catch(
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code: 'PEER_UNREACHABLE' })
    expect((err as Error).message).toContain('bootstrap')
  }, 30_000)

  it('a bootstrap peer too busy to finish handshakes at first (they time out) is joined once it answers', async () => {
    const first = await engine({ dht: { enabled: true } })
    const target = first.addresses[0]!
    const port = Number(target.split('/')[4])
    // Silent for 3 s (connections held, never answered), then a plain forwarder to the engine.
    const openAt = Date.now() + 3_000
    const held: Socket[] = []
    const proxy = createServer((sock) => {
      if (Date.now() < openAt) return void held.push(sock.on('error', () => {}))
      const up = connect(port, '127.0.0.1')
      sock
        .on('error', () => up.destroy())
        .pipe(up)
        .on('error', () => sock.destroy())
        .pipe(sock)
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    stops.push(async () => {
      for (const s of held) s.destroy()
      proxy.close()
    })
    const via = target.replace(`/tcp/${port}/`, `/tcp/${(proxy.address() as AddressInfo).port}/`)
    const joined = await engine({ timeouts: { connectMs: 500 }, dht: { bootstrap: [via], lookupMs: 20_000 } })
    expect(held.length).toBeGreaterThanOrEqual(3)
    expect(engineInternals(joined).network.connectionCount(first.peerId)).toBeGreaterThan(0)
  }, 60_000)

  it('an engine on the DHT answers queries: server mode, not a client only', async () => {
    const { nodes } = await dht(2)
    expect(engineInternals(nodes[0]!).network.dht?.getMode()).toBe('server')
  })
})

/** Whether `node` keeps a provider record of `cid` naming `provider` itself (not found by asking others). */
async function holdsRecord(node: Engine, cid: Uint8Array, provider: string): Promise<boolean> {
  const dht = engineInternals(node).network.dht!
  const stop = new AbortController()
  try {
    // The DHT yields its own records first, as a response and a PROVIDER event from itself;
    // anything from another peer means it had none.
    for await (const event of dht.findProviders(contentKey(cid), { signal: stop.signal })) {
      const mine = 'from' in event && event.from.toString() === node.peerId
      if (mine && event.name === 'PROVIDER') return event.providers.some((p) => p.id.toString() === provider)
      if (!mine && (event.name === 'PROVIDER' || event.name === 'PEER_RESPONSE')) return false
    }
    return false
  } catch {
    return false
  } finally {
    stop.abort()
  }
}
