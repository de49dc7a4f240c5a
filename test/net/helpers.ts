import { createHash, randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { afterEach } from 'vitest'
import type { FrameStream } from '../../src/net/index.ts'
import { Network, type NetworkOptions, wrapStream } from '../../src/net/index.ts'

export { eventually, sleep } from '../support/wait.ts'

const started: Network[] = []

/** Networks made here are stopped after each test, whatever happened. */
export async function network(opts: NetworkOptions = {}): Promise<Network> {
  const n = await Network.create(opts)
  started.push(n)
  return n
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.stop()))
})

export async function readAll(s: FrameStream): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const d of s.incoming) parts.push(d.subarray())
  return Buffer.concat(parts)
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

export function random(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

/** Writes `data` in `part`-sized writes. */
export async function writeAll(s: FrameStream, data: Uint8Array, part = 256 * 1024): Promise<void> {
  for (let off = 0; off < data.byteLength; off += part) await s.write([data.subarray(off, off + part)])
}

/** Echoes a raw libp2p stream back to its sender until the sender closes its side. */
export function echoStream(stream: Stream): void {
  const s = wrapStream(stream)
  void (async () => {
    for await (const d of s.incoming) await s.write([d.subarray()])
    await s.closeWrite()
  })().catch((err: Error) => s.abort(err))
}
