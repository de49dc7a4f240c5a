import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The CLI's source entry: Node 24 strips its types, so no build is needed to test it. */
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url))

export interface CliRun {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: Buffer
}

/** Runs `haul <args>` in a child process (as `uid`/`gid` when given) and collects its raw output. */
export function runCli(
  args: string[],
  opts: { uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid }),
      ...(opts.gid === undefined ? {} : { gid: opts.gid }),
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`haul ${args[0]} did not finish in ${opts.timeoutMs ?? 60_000} ms`))
    }, opts.timeoutMs ?? 60_000)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) })
    })
  })
}

/** The JSON events of a `--json` run, one per stdout line. */
export function jsonEvents(r: CliRun): Array<Record<string, unknown>> {
  return r.stdout
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}
