import { readFileSync } from 'node:fs'
import { InvalidArgumentError } from '../errors.ts'
import { escapeControls, safeJson } from '../util/safe-text.ts'
import {
  COMMANDS,
  type Command,
  checkEngineOptions,
  checkFlagsFor,
  EXIT,
  engineOptionsOf,
  onePath,
  type ParsedArgs,
  parse,
  parsePriority,
  parseRate,
  takesFlag,
} from './args.ts'
import { describeError, inCliTerms } from './format.ts'
import { endProgressLine, Output } from './output.ts'
import { stoppedByClosedOutput, watchOutput, write } from './signals.ts'
import { HELP, USAGE } from './usage.ts'

/** The package's version, from its package.json (two folders up from src/cli, dist/cli and dist/bundle). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

const isCommand = (c: string | undefined): c is Command => (COMMANDS as readonly string[]).includes(c ?? '')

/**
 * Reads the command line and runs the command; resolves to the exit code (EXIT). Each command
 * loads only what it needs: the libp2p stack alone is ~50 MB of resident memory once imported,
 * which `haul index` has no use for.
 */
async function main(argv: string[]): Promise<number> {
  // The harness has its own options; it loads only when asked for.
  if (argv[0] === 'loadtest') return (await import('../loadtest/cli.ts')).runLoadTestCli(argv.slice(1))
  const { values, positionals } = parse(argv)
  const [command, ...args] = positionals
  if (values.version === true) {
    write(process.stdout, `haul ${version()}\n`)
    return EXIT.done
  }
  if (command === undefined) {
    write(process.stdout, USAGE)
    return values.help === true ? EXIT.done : EXIT.usage
  }
  if (!isCommand(command)) throw new InvalidArgumentError(`unknown command "${command}": try "haul --help"`)
  if (values.help === true) {
    write(process.stdout, HELP[command])
    return EXIT.done
  }
  checkFlagsFor(command, values)
  checkWorkingFolder()
  try {
    return await run(command, args, values)
  } catch (err) {
    throw inCliTerms(err, takesFlag(command, 'max-open-files'))
  }
}

/**
 * Refuses to run from a folder that was deleted under the shell (`cd d; rmdir ../d`): there
 * process.cwd() throws, relative paths mean nothing, and worker threads cannot start (Node
 * resolves their cwd), so a command would hang or end silently half-way.
 */
function checkWorkingFolder(): void {
  try {
    process.cwd()
  } catch (err) {
    throw new InvalidArgumentError(
      'the current folder no longer exists (it was deleted or moved): cd to an existing folder and run haul again',
      { cause: err },
    )
  }
}

/**
 * haul's own warnings (`HaulWarning`, `HaulCallbackWarning`: a port taken by another program, a
 * listener that threw) as the command's output: a `warning:` line, or a `warning` event with
 * --json. Node's own form, with its pid and a --trace-warnings hint, stays for the others.
 */
function showHaulWarnings(out: Output): void {
  const node = process.listeners('warning')
  process.removeAllListeners('warning')
  process.on('warning', (w) => {
    if (!w.name.startsWith('Haul')) {
      for (const listener of node) listener(w)
      return
    }
    out.event({ event: 'warning', message: w.message })
    out.done()
    out.human(`warning: ${w.message}`)
  })
}

/** Runs `command` with its arguments and flags (checked against the command already). */
async function run(command: Command, args: string[], values: ParsedArgs['values']): Promise<number> {
  const out = new Output(values.json === true)
  showHaulWarnings(out)
  if (command === 'relay') {
    const { runRelay } = await import('./commands/relay.ts')
    return runRelay(args, values, out)
  }
  const engine = engineOptionsOf(values)
  checkEngineOptions(engine)
  switch (command) {
    case 'index': {
      const { runIndex } = await import('./commands/index-file.ts')
      return runIndex(onePath(args, 'index'), values.out, values.force === true, engine, out)
    }
    case 'send': {
      const { runSend } = await import('./commands/send.ts')
      return runSend(args, { public: values.public === true }, engine, out)
    }
    case 'seed': {
      const { runSeed } = await import('./commands/seed.ts')
      return runSeed(args, { public: values.public === true }, engine, out)
    }
    case 'get': {
      const { runGet } = await import('./commands/get.ts')
      const maxRate = values['max-rate']
      return runGet(
        args,
        {
          out: values.out,
          overwrite: values.force === true,
          symlinks: values.symlinks === true,
          sync: values['no-fsync'] !== true,
          waitIfBusy: values.wait === true,
          maxBytesPerSec: maxRate === undefined ? undefined : parseRate('--max-rate', maxRate),
          priority: values.priority === undefined ? undefined : parsePriority(values.priority),
          provide: values.provide === true,
        },
        engine,
        out,
      )
    }
  }
}

/** A command stopped because its output closed ends 141, whether it was interrupted or done; a failure keeps its code. */
const exitCode = (code: number): number =>
  stoppedByClosedOutput() && code !== EXIT.failed && code !== EXIT.usage ? EXIT.outputClosed : code

const json = process.argv.includes('--json')
watchOutput()
main(process.argv.slice(2)).then(
  (code) => process.exit(exitCode(code)),
  (err: unknown) => {
    const { code, message } = describeError(err)
    // The message may quote a peer (or a path, a ticket): shown as data, never as terminal input.
    if (json) write(process.stdout, `${safeJson({ event: 'error', code, message })}\n`)
    else {
      endProgressLine()
      write(process.stderr, `error [${code}]: ${escapeControls(message)}\n`)
    }
    process.exit(err instanceof InvalidArgumentError ? EXIT.usage : EXIT.failed)
  },
)
