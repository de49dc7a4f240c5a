import { parseArgs } from 'node:util'
import { parseChunking } from '../chunking/params.ts'
import { cidToString } from '../descriptor/cid.ts'
import { defaultText } from '../engine/config/docs.ts'
import { type EngineOptions, resolveEngineConfig } from '../engine/config.ts'
import { InvalidArgumentError } from '../errors.ts'
import { decodeTicket } from '../ticket/ticket.ts'
import { escapeControls, safeJson } from '../util/safe-text.ts'
import { describeError, formatBytes, formatDuration, formatRate, progressLine } from './format.ts'
import { Output } from './output.ts'

const USAGE = `haul — move very large files between libp2p peers, verified chunk by chunk

Usage:
  haul index <file> [--chunking fixed:1m|fixed:2m|fixed:4m|cdc|cdc:MIN:AVG:MAX] [--out <descriptor>] [--json]
  haul send <file> [--listen <multiaddr>]... [--data-dir <dir>] [--chunking ...] [--json]
  haul get <ticket> [-o <path>] [--force] [--wait] [--listen <multiaddr>]... [--json]
  haul loadtest [--processes K] [--transfers M] [--concurrency C] [--min 64k] [--max 4m] ... (haul loadtest --help)

Options:
  --json        newline-delimited JSON events instead of human output
  --force       get: replace a file already at the destination that holds other data
  --wait        get: if another haul is writing the destination, wait for it instead of failing
  --memory MiB  memory budget for chunk buffers (default ${defaultText('memoryBudget')})
  --workers N   worker threads (default ${defaultText('workers')})
`

async function main(argv: string[]): Promise<number> {
  // The harness has its own options; it loads only when asked for.
  if (argv[0] === 'loadtest') return (await import('../loadtest/cli.ts')).runLoadTestCli(argv.slice(1))
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      chunking: { type: 'string' },
      out: { type: 'string', short: 'o' },
      listen: { type: 'string', multiple: true },
      'data-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      memory: { type: 'string' },
      workers: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const [command, arg] = positionals
  const out = new Output(values.json === true)
  if (values.help || command === undefined) {
    process.stdout.write(USAGE)
    return command === undefined && !values.help ? 2 : 0
  }
  const engineOptions: EngineOptions = {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.chunking === undefined ? {} : { chunking: parseChunking(values.chunking) }),
    ...(values.memory === undefined
      ? {}
      : { memoryBudget: positiveInt('--memory', values.memory) * 1024 * 1024 }),
    ...(values.workers === undefined ? {} : { workers: positiveInt('--workers', values.workers) }),
  }
  switch (command) {
    case 'index':
      return runIndex(need(arg, 'index <file>'), values.out, engineOptions, out)
    case 'send':
      return runSend(need(arg, 'send <file>'), engineOptions, out)
    case 'get':
      return runGet(need(arg, 'get <ticket>'), values.out, engineOptions, out, {
        overwrite: values.force === true,
        waitIfBusy: values.wait === true,
      })
    default:
      throw new InvalidArgumentError(`unknown command "${command}": try "haul --help"`)
  }
}

// Each command loads only what it needs: the libp2p stack alone is ~50 MB of resident
// memory once imported, which `haul index` has no use for.
async function runIndex(
  file: string,
  outPath: string | undefined,
  opts: EngineOptions,
  out: Output,
): Promise<number> {
  const { indexFile } = await import('../serve/indexer.ts')
  const { MemoryBudget } = await import('../resources/memory-budget.ts')
  const { WorkerPool } = await import('../workers/pool.ts')
  // The engine's defaults and checks, as `send` and `get` have them.
  const config = resolveEngineConfig(opts)
  const pool = new WorkerPool({ threads: config.workers })
  const budget = new MemoryBudget({ limit: config.memoryBudget })
  try {
    const r = await indexFile(file, {
      chunking: config.chunking,
      pool,
      budget,
      ...(outPath === undefined ? {} : { descriptorPath: outPath }),
      onProgress: (done, total) => out.progressBytes('indexing', done, total),
    })
    out.done()
    const cid = cidToString(r.cid)
    const rate = r.seconds > 0 ? r.bytes / r.seconds : 0
    out.event({
      event: 'indexed',
      cid,
      chunks: r.chunks,
      bytes: r.bytes,
      seconds: r.seconds,
      rate,
      descriptor: r.descriptorPath,
    })
    out.human(
      `content id  ${cid}\nchunks      ${r.chunks}\nsize        ${formatBytes(r.bytes)}\nthroughput  ${formatRate(rate)} (${r.seconds.toFixed(2)} s)\ndescriptor  ${r.descriptorPath}`,
    )
    return 0
  } finally {
    await pool.destroy()
  }
}

async function runSend(file: string, opts: EngineOptions, out: Output): Promise<number> {
  const { Engine } = await import('../engine/engine.ts')
  const engine = await Engine.create(opts)
  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const { ticket, index } = await engine.publish(file, {
      signal: stop.signal,
      onProgress: (done, total) => out.progressBytes('indexing', done, total),
    })
    out.done()
    out.event({
      event: 'published',
      ticket,
      cid: cidToString(index.cid),
      bytes: index.bytes,
      chunks: index.chunks,
      peerId: engine.peerId,
      addresses: engine.addresses,
    })
    out.human(
      `serving ${file} (${formatBytes(index.bytes)}, ${index.chunks} chunks)\n\nticket:\n${ticket}\n\nrun on the receiver:  npx haul get ${ticket}\nCtrl-C stops serving.`,
    )
    if (!stop.signal.aborted)
      await new Promise((r) => stop.signal.addEventListener('abort', r, { once: true }))
    out.event({ event: 'stopped' })
    return 0
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await engine.stop()
  }
}

async function runGet(
  ticketText: string,
  outPath: string | undefined,
  opts: EngineOptions,
  out: Output,
  destOpts: { overwrite: boolean; waitIfBusy: boolean },
): Promise<number> {
  const ticket = decodeTicket(ticketText)
  const dest = outPath ?? `haul-${Buffer.from(ticket.cid).toString('hex').slice(0, 16)}`
  const { Engine } = await import('../engine/engine.ts')
  const engine = await Engine.create(opts)
  const abort = new AbortController()
  const onSignal = (): void => abort.abort()
  process.once('SIGINT', onSignal)
  try {
    const handle = engine.fetch(ticketText, dest, {
      ...destOpts,
      signal: abort.signal,
      onProgress: (p) => {
        out.event({ event: 'progress', ...p })
        out.bar(progressLine(p))
      },
      onRetry: (info) => {
        const { code, message } = describeError(info.error)
        out.event({
          event: 'retry',
          attempt: info.attempt,
          maxAttempts: info.maxAttempts,
          delayMs: info.delayMs,
          code,
          message,
        })
        out.done()
        out.human(
          `connection problem [${code}]: ${escapeControls(message)}; retry ${info.attempt}/${info.maxAttempts} in ${(info.delayMs / 1000).toFixed(1)} s`,
        )
      },
    })
    const r = await handle.result
    out.done()
    out.event({
      event: 'done',
      path: r.path,
      bytes: r.bytes,
      chunks: r.chunks,
      seconds: r.seconds,
      rate: r.rate,
      resume: r.resume,
      retries: r.retries,
    })
    if (r.resume.mode === 'present') {
      out.human(
        `${r.path} already holds this content (${formatBytes(r.bytes)}, verified by its content id): nothing to fetch`,
      )
      return 0
    }
    if (r.resume.chunksKept > 0) {
      out.human(
        `resumed (${r.resume.mode}): kept ${r.resume.chunksKept} chunks (${formatBytes(r.resume.bytesKept)}) from an earlier run`,
      )
    }
    out.human(
      `received ${r.path}: ${formatBytes(r.bytes)} in ${r.chunks} chunks, every chunk verified, ${formatDuration(r.seconds)} at ${formatRate(r.rate)}${r.retries > 0 ? `, ${r.retries} retries` : ''}`,
    )
    return 0
  } finally {
    process.off('SIGINT', onSignal)
    await engine.stop()
  }
}

function need(v: string | undefined, what: string): string {
  if (v === undefined) throw new InvalidArgumentError(`missing argument: haul ${what}`)
  return v
}

function positiveInt(name: string, v: string): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`${name} takes a positive whole number, got "${v}"`)
  return n
}

const json = process.argv.includes('--json')
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const { code, message } = describeError(err)
    // The message may quote a peer (or a path, a ticket): shown as data, never as terminal input.
    if (json) process.stdout.write(`${safeJson({ event: 'error', code, message })}\n`)
    else process.stderr.write(`\nerror [${code}]: ${escapeControls(message)}\n`)
    process.exit(err instanceof InvalidArgumentError ? 2 : 1)
  },
)
