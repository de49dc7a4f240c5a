import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { useEngines } from '../support/engines.ts'

const FILES = 600

/** This process's open file descriptors. */
async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length
}

describe.skipIf(!existsSync('/proc/self/fd'))('open files while publishing many files', () => {
  const engines = useEngines({ workers: 1, listen: ['/ip4/127.0.0.1/tcp/0'] })

  it(`${FILES} small files published by one engine and fetched by another in the same process: open descriptors stay within server.maxOpenFiles, not two per published file`, async () => {
    const limit = 64
    const base = await openFds()
    const sender = await engines.engine({
      dataDir: join(engines.dir, 'data'),
      server: { maxOpenFiles: limit },
    })
    const receiver = await engines.engine()
    const src = join(engines.dir, 'src')
    const out = join(engines.dir, 'out')
    await mkdir(src)
    await mkdir(out)
    let peak = 0
    const sample = async () => {
      peak = Math.max(peak, (await openFds()) - base)
    }
    const tickets: string[] = []
    for (let i = 0; i < FILES; i++) {
      const path = join(src, `f${i}`)
      await writeFile(path, `small file ${i}\n`.repeat(50 + i))
      tickets.push((await sender.publish(path)).ticket)
      if (i % 50 === 0) await sample()
    }
    await sample()
    for (let i = 0; i < FILES; i += 20) {
      await Promise.all(
        tickets.slice(i, i + 20).map((t, j) => receiver.fetch(t, join(out, `f${i + j}`)).result),
      )
      await sample()
    }
    for (let i = 0; i < FILES; i += 97) {
      expect(await readFile(join(out, `f${i}`), 'utf8')).toBe(await readFile(join(src, `f${i}`), 'utf8'))
    }
    // Two engines' sockets, workers and event loops come on top of the files served.
    expect(peak).toBeLessThan(limit + 100)
  }, 180_000)
})
