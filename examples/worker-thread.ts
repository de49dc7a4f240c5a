/**
 * Engines off the main thread: `thread: 'worker'` runs an engine in a worker thread of its own
 * and hands back an object with the same API. Progress callbacks run in this thread, a signal
 * from this thread cancels, errors arrive with their class and code; the work of the transfer
 * (streams, verification, disk writes) stays in the engines' threads, so this thread's event
 * loop is free meanwhile.
 *
 *   npx node examples/worker-thread.ts
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, SourceInvalidError } from '../src/index.ts'

const dir = await mkdtemp(join(tmpdir(), 'haul-example-'))
const source = join(dir, 'data.bin')
const copy = join(dir, 'copy.bin')
await writeFile(source, randomBytes(16 * 1024 * 1024))

const sender = await createEngine({ thread: 'worker' })
const receiver = await createEngine({ thread: 'worker' })
try {
  const { ticket } = await sender.publish(source)

  // This thread's own work while the file arrives: a 10 ms timer noting how late it fires.
  let last = performance.now()
  let worst = 0
  const beat = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last - 10)
    last = now
  }, 10)
  let calls = 0
  const transfer = receiver.fetch(ticket, copy, {
    signal: AbortSignal.timeout(60_000),
    onProgress: () => calls++,
  })
  const r = await transfer.result
  clearInterval(beat)
  console.log(
    `fetched ${r.bytes} bytes, ${calls > 0 ? 'with' : 'without'} progress calls here; status ${transfer.status()}`,
  )
  console.log(`this thread's 10 ms timer fired at most ${worst.toFixed(0)} ms late meanwhile`)
  if (!(await readFile(source)).equals(await readFile(copy))) throw new Error('the copy differs')
  console.log('identical to the source')

  // An error keeps its class and code on this side.
  try {
    await receiver.publish(join(dir, 'missing.bin'))
  } catch (err) {
    if (!(err instanceof SourceInvalidError)) throw err
    console.log(`publishing a missing file: ${err.name} [${err.code}]`)
  }
} finally {
  // Stops each engine and ends its thread.
  await Promise.all([sender.stop(), receiver.stop()])
  await rm(dir, { recursive: true, force: true })
}
