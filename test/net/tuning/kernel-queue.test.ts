import { once } from 'node:events'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { addressHex, kernelUnacked, parseTable, socketKey } from '../../../src/net/tuning/kernel-queue.ts'
import { eventually } from '../../support/wait.ts'

describe('kernel-queue: the kernel tables', () => {
  it("writes addresses as /proc/net/tcp and tcp6 do (this machine's byte order)", () => {
    expect(addressHex('127.0.0.1')).toBe('0100007F')
    expect(addressHex('10.231.8.1')).toBe('0108E70A')
    expect(addressHex('::1')).toBe('00000000000000000000000001000000')
    expect(addressHex('::ffff:10.231.8.1')).toBe('0000000000000000FFFF00000108E70A')
    expect(addressHex('fe80::1%eth0')).toBe('000080FE000000000000000001000000')
    expect(addressHex('not an address')).toBeUndefined()
  })

  it("reads each line's addresses and tx_queue", () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:8F15 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3308940 1',
      '   1: 0108E70A:8621 0208E70A:E15E 01 0002BF2C:00000000 01:00000015 00000000     0        0 42 2',
    ].join('\n')
    const into = new Map<string, number>()
    parseTable(text, into)
    expect(into.get('0100007F:8F15-00000000:0000')).toBe(0)
    expect(into.get('0108E70A:8621-0208E70A:E15E')).toBe(0x2bf2c)
    expect(into.size).toBe(2)
  })
})

describe.runIf(process.platform === 'linux')('kernel-queue: live sockets', () => {
  const open: Array<Server | Socket> = []
  afterEach(() => {
    for (const o of open.splice(0)) 'destroy' in o ? o.destroy() : o.close()
  })

  /** A connection whose server side reads nothing until told to. */
  const pair = async (host: string) => {
    let accepted!: Socket
    const server = createServer((s) => {
      accepted = s
      s.pause()
      open.push(s)
    })
    open.push(server)
    server.listen(0, host)
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    const client = createConnection({ host, port, noDelay: true })
    open.push(client)
    await once(client, 'connect')
    await eventually(() => accepted !== undefined, 'the accept')
    return { client, server: () => accepted }
  }

  for (const host of ['127.0.0.1', '::1']) {
    it(`${host}: the bytes a peer that reads nothing has not acknowledged, and none once it has read them`, async () => {
      const { client, server } = await pair(host)
      expect(socketKey(client)).toBeDefined()
      // The tables are read at most every 100 ms: a snapshot may predate this socket.
      await eventually(() => kernelUnacked(client) === 0, 'the socket in the tables')
      // Far more than the peer's receive buffer: the rest stays in ours, unacknowledged.
      const block = Buffer.alloc(1024 * 1024)
      for (let i = 0; i < 32 && client.write(block); i++);
      await eventually(() => (kernelUnacked(client) ?? 0) > 0, 'bytes unacknowledged')
      server().resume()
      await eventually(
        () => kernelUnacked(client) === 0 && client.writableLength === 0,
        'every byte acknowledged',
        20_000,
      )
    })
  }

  it('a socket not connected has no key', () => {
    const s = createConnection({ host: '127.0.0.1', port: 9 })
    s.on('error', () => {})
    open.push(s)
    expect(socketKey(s)).toBeUndefined()
    expect(kernelUnacked(s)).toBeUndefined()
  })
})
