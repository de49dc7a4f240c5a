import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseChunking } from '../chunking/params.ts'
import { cidToString } from '../descriptor/cid.ts'
import { defaultText } from '../engine/config/docs.ts'
import { type EngineOptions, resolveEngineConfig } from '../engine/config.ts'
import { AbortedError, InvalidArgumentError } from '../errors.ts'
import { decodeSwarmTicket, joinTickets } from '../ticket/multi-ticket.ts'
import { escapeControls, safeJson } from '../util/safe-text.ts'
import { describeError, formatBytes, formatDuration, formatRate, progressLine } from './format.ts'
import { Output } from './output.ts'

const USAGE = `haul — move very large files between libp2p peers, verified chunk by chunk

Usage:
  haul send <file>       publish a file and serve it until Ctrl-C
  haul get <ticket>...   fetch what a ticket names (several tickets of one content: from all
                         their peers at once), resuming an earlier run
  haul index <file>      only build the file's descriptor (content id, chunks)
  haul loadtest ...      many transfers between engine processes (haul loadtest --help)

  haul <command> --help  that command's options and examples
  haul --version

Exit codes: 0 done, 1 failed, 2 usage error, 130 interrupted (get: run it again to resume).
`

const ENGINE_FLAGS = `  --memory <MiB>          memory budget for chunk buffers (default ${defaultText('memoryBudget')})
  --workers <n>           worker threads (default ${defaultText('workers')})
  --json                  newline-delimited JSON events instead of human output`

const HELP: Record<string, string> = {
  send: `haul send <file> — index the file, print its ticket, serve it until Ctrl-C or SIGTERM

Options:
  --listen <multiaddr>    listen address, repeatable (default ${defaultText('listen')})
  --data-dir <dir>        keep the identity and descriptors here: restarted with the same
                          --listen port, the sender answers the same ticket
  --chunking <c>          fixed:1m (default), fixed:2m, fixed:4m, cdc, cdc:<avg>, cdc:MIN:AVG:MAX
${ENGINE_FLAGS}

Examples:
  haul send ./big.iso
  haul send ./big.iso --listen /ip4/0.0.0.0/tcp/4001 --data-dir ~/.haul
`,
  get: `haul get <ticket>... [-o <path>] — fetch what the ticket names; run it again after an
interruption and it fetches only what is missing. A ticket naming several peers, or several
tickets of the same content, fetch from all those peers at once.

Options:
  -o, --out <path>        where to write (default haul-<first 16 hex digits of the content id>)
  --force                 replace a file at the destination that holds other data
  --wait                  if another haul is writing the destination, wait for it
  --listen <multiaddr>    listen address, repeatable (default ${defaultText('listen')})
${ENGINE_FLAGS}

Examples:
  haul get haul1… -o ./copy.iso
  haul get haul1…a haul1…b -o ./copy.iso      two senders of one file
  haul get haul1… -o ./copy.iso --json

Exit codes: 0 done (or already there), 1 failed, 2 usage error, 130 interrupted.
`,
  index: `haul index <file> — build the descriptor only: content id, chunk count, throughput

Options:
  -o, --out <descriptor>  where to write the descriptor (default <file>.haul)
  --chunking <c>          fixed:1m (default), fixed:2m, fixed:4m, cdc, cdc:<avg>, cdc:MIN:AVG:MAX
${ENGINE_FLAGS}

Example:
  haul index ./big.iso --chunking cdc
`,
}

/** The package's version, from its package.json (two folders up from src/cli and dist/cli). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** node:util's parseArgs, with its refusals (unknown flag, missing or ambiguous value) as usage errors. */
function parse(argv: string[]) {
  try {
    return parseArgs({
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
        version: { type: 'boolean', short: 'V', default: false },
      },
    })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (!code.startsWith('ERR_PARSE_ARGS')) throw err
    // Node's first sentence names the flag; the rest is advice about `--`.
    const first = (err as Error).message.split(/\.\s|\n/)[0]
    throw new InvalidArgumentError(`${first}: see "haul --help"`)
  }
}

async function main(argv: string[]): Promise<number> {
  // The harness has its own options; it loads only when asked for.
  if (argv[0] === 'loadtest') return (await import('../loadtest/cli.ts')).runLoadTestCli(argv.slice(1))
  const { values, positionals } = parse(argv)
  const [command] = positionals
  const out = new Output(values.json === true)
  if (values.version) {
    process.stdout.write(`haul ${version()}\n`)
    return 0
  }
  if (values.help || command === undefined) {
    process.stdout.write((command === undefined ? undefined : HELP[command]) ?? USAGE)
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
      return runIndex(oneFile(positionals, 'index'), values.out, engineOptions, out)
    case 'send':
      return runSend(oneFile(positionals, 'send'), engineOptions, out)
    case 'get':
      return runGet(ticketOf(positionals.slice(1)), values.out, engineOptions, out, {
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
  const ticket = decodeSwarmTicket(ticketText)
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
    const r = await handle.result.catch((err: unknown) => {
      if (!(abort.signal.aborted && err instanceof AbortedError)) throw err
      out.done()
      out.event({ event: 'interrupted', path: dest, progress: handle.progress() })
      out.human(`interrupted: ${dest}.part keeps what was verified; run the same command again to resume`)
      return undefined
    })
    if (r === undefined) return INTERRUPTED
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

/** The exit code of a command the user interrupted (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130

/**
 * The ticket `haul get` fetches: one ticket as given (naming one peer or several), or several
 * tickets of the same content joined into one (every peer they name is a provider).
 */
function ticketOf(tickets: string[]): string {
  if (tickets.length === 0) throw new InvalidArgumentError('missing argument: haul get <ticket>')
  return tickets.length === 1 ? tickets[0]! : joinTickets(tickets)
}

/** The one file `send` and `index` take: more is refused, not silently dropped. */
function oneFile(positionals: string[], command: string): string {
  const [, file, ...more] = positionals
  if (file === undefined) throw new InvalidArgumentError(`missing argument: haul ${command} <file>`)
  if (more.length > 0) {
    throw new InvalidArgumentError(
      `haul ${command} takes one file, got ${more.length + 1}: run it once per file`,
    )
  }
  return file
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
