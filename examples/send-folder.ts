/**
 * A folder in one process: one engine publishes it as a collection, a second one recreates it by
 * its ticket, with a line per file as it lands under its final name, verified.
 *
 *   npx node examples/send-folder.ts
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createEngine, HaulError } from '../src/index.ts'

const dir = await mkdtemp(join(tmpdir(), 'haul-example-'))
const folder = join(dir, 'photos')
await mkdir(join(folder, '2024'), { recursive: true })
await writeFile(join(folder, 'index.txt'), 'three photos\n')
for (const name of ['a.jpg', 'b.jpg', 'c.jpg'])
  await writeFile(join(folder, '2024', name), randomBytes(700_000))

const sender = await createEngine({ dataDir: join(dir, 'sender-data') })
const receiver = await createEngine()
try {
  const { ticket, index } = await sender.publishCollection(folder)
  console.log(`published ${index.name}: ${index.files} files, ${index.bytes} bytes in ${index.chunks} chunks`)

  const copy = join(dir, 'copy')
  const r = await receiver.fetchCollection(ticket, copy, {
    signal: AbortSignal.timeout(60_000),
    onFile: (f) => console.log(`placed ${f.path} (${f.size} bytes)`),
  })
  for (const path of ['index.txt', '2024/a.jpg', '2024/b.jpg', '2024/c.jpg']) {
    const same = (await readFile(join(folder, path))).equals(await readFile(join(copy, path)))
    if (!same) throw new Error(`${path} differs from the source`)
  }
  console.log(
    `fetched ${r.files} files (${r.bytes} bytes) into ${r.folders} folder(s), identical to the source`,
  )
} catch (err) {
  if (err instanceof HaulError) console.error(`failed [${err.code}]: ${err.message}`)
  else console.error(err)
  process.exitCode = 1
} finally {
  await Promise.all([sender.stop(), receiver.stop()])
  await rm(dir, { recursive: true, force: true })
}
