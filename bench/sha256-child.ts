/** The reference for bench/index: plain single-threaded node:crypto SHA-256 of a file, in its own process. */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { peakRss } from './lib/proc.ts'

const file = process.argv[2]!
const t0 = performance.now()
const fh = await open(file, 'r')
const buf = Buffer.allocUnsafe(4 * 1024 * 1024)
const h = createHash('sha256')
let total = 0
for (;;) {
  const { bytesRead } = await fh.read(buf, 0, buf.length, total)
  if (bytesRead === 0) break
  h.update(buf.subarray(0, bytesRead))
  total += bytesRead
}
await fh.close()
h.digest()
const seconds = (performance.now() - t0) / 1000
console.log(JSON.stringify({ mode: 'sha256', bytes: total, seconds, peakRss: peakRss() }))
