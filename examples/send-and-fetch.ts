/**
 * The main job in one process: one engine publishes a file, a second one fetches it by its
 * ticket, every chunk verified against the file's Merkle root before it is written.
 *
 *   npx node examples/send-and-fetch.ts
 *
 * Between two machines the ticket is what travels (it names the sender's peer id, addresses and
 * the content id); the sender's engine serves the file until it stops.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, HaulError } from '../src/index.ts'

const dir = await mkdtemp(join(tmpdir(), 'haul-example-'))
const source = join(dir, 'big.iso')
const copy = join(dir, 'copy.iso')
await writeFile(source, randomBytes(6 * 1024 * 1024 + 123)) // 7 chunks of at most 1 MiB

const sender = await createEngine({ dataDir: join(dir, 'sender-data') })
const receiver = await createEngine({ memoryBudget: 64 * 1024 * 1024 })
try {
  const { ticket } = await sender.publish(source) // index + serve; the ticket is one string
  console.log(`ticket ${ticket.slice(0, 24)}… (${ticket.length} characters)`)

  const transfer = receiver.fetch(ticket, copy, {
    signal: AbortSignal.timeout(60_000),
    onProgress: (p) => console.log(`progress ${p.bytesDone} / ${p.totalBytes} bytes`),
  })
  const r = await transfer.result // { path, bytes, chunks, seconds, rate, resume, retries }

  const same = (await readFile(source)).equals(await readFile(copy))
  if (!same) throw new Error('the copy differs from the source')
  console.log(`fetched ${r.bytes} bytes in ${r.chunks} chunks (${r.resume.mode}), identical to the source`)
} catch (err) {
  if (err instanceof HaulError) console.error(`failed [${err.code}]: ${err.message}`)
  else console.error(err)
  process.exitCode = 1
} finally {
  await Promise.all([sender.stop(), receiver.stop()])
  await rm(dir, { recursive: true, force: true })
}
