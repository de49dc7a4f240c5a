/**
 * `npm start`: the main job end to end on one machine. Two peers in two
 * processes (`haul send` and `haul get`), a generated file, the transfer with
 * its progress bar, then an independent SHA-256 of both files.
 *
 * Size knob: HAUL_DEMO_MIB (default 1024) or `npm start -- --mib 256`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: { mib: { type: 'string' }, keep: { type: 'boolean', default: false } },
})
const mib = Number(values.mib ?? process.env.HAUL_DEMO_MIB ?? 1024)
const bin = new URL('../../bin/haul.js', import.meta.url).pathname

async function generate(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w')
  const block = Buffer.allocUnsafe(4 * 1024 * 1024)
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(block.length, bytes - done)
      // Half random, half repetitive text: both the raw and the compressed path get exercised.
      if ((done / block.length) % 2 === 0) randomFillSync(block, 0, n)
      else block.fill(`haul demo block ${done} `, 0, n)
      await fh.write(block, 0, n)
      done += n
    }
  } finally {
    await fh.close()
  }
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }))
    h.update(chunk as Buffer)
  return h.digest('hex')
}

function startSender(file: string, dataDir: string): Promise<{ child: ChildProcess; ticket: string }> {
  const child = spawn(process.execPath, [bin, 'send', file, '--json', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      const e = JSON.parse(line) as { event: string; ticket?: string; message?: string }
      if (e.event === 'published' && e.ticket !== undefined) resolve({ child, ticket: e.ticket })
      if (e.event === 'error') reject(new Error(`sender failed: ${e.message}`))
    })
    child.once('exit', (code) => reject(new Error(`sender exited early (${code})`)))
  })
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'haul-demo-'))
  const src = join(dir, 'source.bin')
  const dest = join(dir, 'received.bin')
  let sender: ChildProcess | undefined
  try {
    console.log(`haul demo: generating a ${mib} MiB test file in ${dir}`)
    await generate(src, mib * 1024 * 1024)
    console.log('starting the sender (process 1): indexing and publishing...')
    const s = await startSender(src, join(dir, 'sender-data'))
    sender = s.child
    console.log(`ticket: ${s.ticket}\nstarting the receiver (process 2):`)
    const code = await new Promise<number>((resolve) => {
      const get = spawn(process.execPath, [bin, 'get', s.ticket, '-o', dest], { stdio: 'inherit' })
      get.once('exit', (c) => resolve(c ?? 1))
    })
    if (code !== 0) {
      console.error(`receiver failed with exit code ${code}`)
      return 1
    }
    console.log('independent check: SHA-256 of both files...')
    const [a, b] = await Promise.all([sha256(src), sha256(dest)])
    console.log(`source    ${a}\nreceived  ${b}`)
    if (a !== b) {
      console.error('MISMATCH: the received file differs from the source')
      return 1
    }
    console.log('OK: identical')
    return 0
  } finally {
    sender?.kill('SIGTERM')
    if (!values.keep) await rm(dir, { recursive: true, force: true })
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
