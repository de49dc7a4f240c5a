/**
 * Progress, cancellation and resume: a throttled fetch reports its progress, is cancelled
 * through an AbortSignal part-way, and a second fetch to the same destination continues from
 * the resume journal beside `<dest>.part` instead of starting over.
 *
 *   npx node examples/progress-and-cancel.ts
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, HaulError } from '../src/index.ts'

const MiB = 1024 * 1024
const dir = await mkdtemp(join(tmpdir(), 'haul-example-'))
const source = join(dir, 'data.bin')
const dest = join(dir, 'copy.bin')
// Larger than journal.minBytes (4 MiB): smaller transfers keep no journal and resume by re-hashing.
await writeFile(source, randomBytes(12 * MiB))

const sender = await createEngine()
const receiver = await createEngine()
try {
  const { ticket } = await sender.publish(source)

  // 1. A fetch limited to 4 MiB/s, cancelled once it holds at least 4 MiB.
  const stop = new AbortController()
  const first = receiver.fetch(ticket, dest, {
    signal: stop.signal,
    maxBytesPerSec: 4 * MiB,
    onProgress: (p) => {
      console.log(`progress ${p.chunksDone}/${p.totalChunks} chunks, ${(p.rate / MiB).toFixed(1)} MiB/s`)
      if (p.bytesDone >= 4 * MiB) stop.abort()
    },
  })
  try {
    await first.result
    throw new Error('the first fetch was expected to be cancelled')
  } catch (err) {
    if (!(err instanceof HaulError) || err.code !== 'ABORTED') throw err
    console.log(`cancelled: status ${first.status()}, <dest>.part and its journal kept`)
  }

  // 2. The same fetch again: only the chunks not yet on disk are fetched.
  const second = receiver.fetch(ticket, dest, { signal: AbortSignal.timeout(60_000) })
  const r = await second.result
  console.log(`resumed from the ${r.resume.mode}: kept ${r.resume.chunksKept} chunks, fetched the rest`)

  if (!(await readFile(source)).equals(await readFile(dest))) throw new Error('the copy differs')
  console.log(`done: ${r.bytes} bytes, identical to the source`)
} catch (err) {
  if (err instanceof HaulError) console.error(`failed [${err.code}]: ${err.message}`)
  else console.error(err)
  process.exitCode = 1
} finally {
  await Promise.all([sender.stop(), receiver.stop()])
  await rm(dir, { recursive: true, force: true })
}
