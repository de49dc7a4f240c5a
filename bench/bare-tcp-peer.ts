/**
 * The reference of bench/shaped-link.ts, run there as a child process in a network namespace
 * (never on its own): what `haul send` and `haul get` do, without chunks, hashes, encryption or
 * multiplexing.
 *
 *   serve <file>                   sends the whole file to each connection; prints {"port"} once
 *                                  listening on every interface, then serves until killed
 *   fetch <host> <port> <out>      writes what arrives to <out>, syncs it (haul get syncs before
 *                                  it renames), prints {"bytes", "seconds" from connect to the
 *                                  last byte written, "syncSeconds"} and exits
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { pipeline } from 'node:stream/promises'

const [mode, ...args] = process.argv.slice(2)
const MiB = 1024 * 1024

if (mode === 'serve' && args.length === 1) {
  const server = createServer((socket) => {
    pipeline(createReadStream(args[0]!, { highWaterMark: MiB }), socket).catch((err: Error) =>
      console.error(`bare-tcp-peer serve: ${err.message}`),
    )
  })
  server.listen(0, '0.0.0.0', () => {
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no TCP port')
    console.log(JSON.stringify({ port: address.port }))
  })
} else if (mode === 'fetch' && args.length === 3) {
  const [host, port, out] = args as [string, string, string]
  const started = performance.now()
  const socket = connect(Number(port), host)
  await pipeline(socket, createWriteStream(out, { highWaterMark: MiB }))
  const streamed = performance.now()
  const fh = await open(out, 'r+')
  try {
    await fh.sync()
    const bytes = (await fh.stat()).size
    const synced = performance.now()
    console.log(
      JSON.stringify({
        bytes,
        seconds: (streamed - started) / 1000,
        syncSeconds: (synced - streamed) / 1000,
      }),
    )
  } finally {
    await fh.close()
  }
} else {
  console.error('usage: bare-tcp-peer.ts serve <file> | fetch <host> <port> <out>')
  process.exit(2)
}
