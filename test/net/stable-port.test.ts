import { mkdir, writeFile as writeText } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine } from '../../src/index.ts'
import { rememberedListen, rememberPort } from '../../src/net/stable-port.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

const portOf = (addrs: readonly string[]): number => Number(/\/tcp\/(\d+)/.exec(addrs[0]!)?.[1])

describe('a restarted sender with a data folder keeps its peer id and its port', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('the ticket printed before the restart fetches from the restarted sender', async () => {
    const data = join(dir, 'data')
    const src = join(dir, 'file.bin')
    await writeFile(src, 2 * 1024 * 1024 + 3, 'random')
    const first = await createEngine({ dataDir: data, workers: 1 })
    const { ticket } = await first.publish(src)
    const before = decodeSwarmTicket(ticket).providers[0]!
    await first.stop()

    const second = await createEngine({ dataDir: data, workers: 1 })
    const receiver = await createEngine({ workers: 1 })
    try {
      expect(second.peerId).toBe(before.peerId)
      expect(portOf(second.addresses)).toBe(portOf(before.addrs))
      await second.publish(src)
      await receiver.fetch(ticket, join(dir, 'copy.bin')).result
      expect(await sha256File(join(dir, 'copy.bin'))).toBe(await sha256File(src))
    } finally {
      await Promise.all([second.stop(), receiver.stop()])
    }
  })

  it('when another program holds that port, the sender starts on a free one for that run, says so, and takes its port back at the next start', async () => {
    const data = join(dir, 'data2')
    const first = await createEngine({ dataDir: data, workers: 1 })
    const port = portOf(first.addresses)
    await first.stop()
    const squatter = createServer()
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve))
    const warnings: string[] = []
    const onWarning = (w: Error): void => {
      if (w.name === 'HaulWarning') warnings.push(w.message)
    }
    process.on('warning', onWarning)
    try {
      const second = await createEngine({ dataDir: data, workers: 1 })
      try {
        expect(portOf(second.addresses)).not.toBe(port)
        await new Promise((resolve) => setImmediate(resolve))
        expect(warnings.join('\n')).toMatch(new RegExp(`could not listen on the ports .*\\(tcp ${port}\\b`))
      } finally {
        await second.stop()
      }
    } finally {
      process.off('warning', onWarning)
      await new Promise((resolve) => squatter.close(resolve))
    }
    // The tickets printed before the squatter came name this port: a start with it free takes it.
    const third = await createEngine({ dataDir: data, workers: 1 })
    try {
      expect(portOf(third.addresses)).toBe(port)
    } finally {
      await third.stop()
    }
  })

  it('keeps a port per family, and reads the bare port an older haul wrote', async () => {
    const data = join(dir, 'ports')
    await mkdir(data)
    const listen = ['/ip4/0.0.0.0/tcp/0', '/ip6/::/tcp/0']
    expect(await rememberedListen(data, listen)).toBeUndefined()
    await rememberPort(data, [
      '/ip4/10.0.0.1/tcp/7000/p2p/12D3KooWRKbZ3mLrzHP4kzRoMAeL3chuAFtJGLVAHd2E3RCZDyjA/p2p-circuit',
      '/ip4/127.0.0.1/tcp/4001',
      '/ip4/192.168.1.2/tcp/4001',
      '/ip6/::1/tcp/4002',
    ])
    expect(await rememberedListen(data, listen)).toEqual(['/ip4/0.0.0.0/tcp/4001', '/ip6/::/tcp/4002'])
    expect(await rememberedListen(data, ['/ip4/127.0.0.1/tcp/9'])).toBeUndefined()
    await writeText(join(data, 'listen-port'), '4005\n')
    expect(await rememberedListen(data, listen)).toEqual(['/ip4/0.0.0.0/tcp/4005', '/ip6/::/tcp/4005'])
  })
})
