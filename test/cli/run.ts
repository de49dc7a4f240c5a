import { type ChildProcess, type ChildProcessByStdio, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { sha256File, tempDir, writeFile } from '../support/files.ts'

export const bin = new URL('../../bin/haul.js', import.meta.url).pathname

export interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `haul <args>` to its end. */
export function run(args: string[], env?: NodeJS.ProcessEnv, cwd?: string): Promise<Ran> {
  return ranOf(spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd }))
}

/** What a process started with stdout and stderr piped wrote there, and its exit code (-1: killed). */
export function ranOf(child: ChildProcessByStdio<null, Readable, Readable>): Promise<Ran> {
  return new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

export type Event = Record<string, unknown> & { event: string }

export const events = (stdout: string): Event[] =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Event)

/**
 * A long-running `haul` (send, seed, a slow get): its output as it comes, lines and (with
 * --json) events, a way to wait for one, and its exit.
 */
export class Running {
  readonly proc: ChildProcess
  readonly lines: string[] = []
  stderr = ''
  readonly exited: Promise<number>
  readonly #waiters = new Set<() => void>()

  /** `haul <args>` from this checkout, or `opts.command` (an installed `haul`) run as it is. */
  constructor(args: string[], opts: { command?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    const [file, argv] =
      opts.command === undefined ? [process.execPath, [bin, ...args]] : [opts.command, args]
    this.proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd })
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d))
    createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      this.lines.push(l)
      for (const w of this.#waiters) w()
    })
    this.exited = new Promise((resolve) =>
      // Killed by a signal: 128 + its number, as a shell reports it (130 SIGINT, 134 SIGABRT, 139 SIGSEGV).
      this.proc.once('exit', (code, sig) =>
        resolve(code ?? (sig ? 128 + (constants.signals[sig] ?? 0) : -1)),
      ),
    )
  }

  /** Started with --json. */
  get json(): boolean {
    return this.proc.spawnargs.includes('--json')
  }

  get events(): Event[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Event)
  }

  /** Resolves with the first line (or event, with --json) that `match` accepts; rejects if the process exits first. */
  waitFor<T>(match: (events: Event[], lines: string[]) => T | undefined, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = match(this.events, this.lines)
        if (found === undefined) return
        this.#waiters.delete(check)
        resolve(found)
      }
      this.#waiters.add(check)
      check()
      void this.exited.then((code) => {
        if (!this.#waiters.has(check)) return
        this.#waiters.delete(check)
        reject(new Error(`haul exited ${code} before ${what}\n${this.lines.join('\n')}\n${this.stderr}`))
      })
    })
  }

  event(name: string, pred: (e: Event) => boolean = () => true): Promise<Event> {
    return this.waitFor((evs) => evs.find((e) => e.event === name && pred(e)), `a "${name}" event`)
  }

  line(re: RegExp): Promise<string> {
    return this.waitFor((_, lines) => lines.find((l) => re.test(l)), `a line matching ${re}`)
  }

  /** Sends `signal` and resolves with the exit code. */
  stop(signal: NodeJS.Signals = 'SIGINT'): Promise<number> {
    this.proc.kill(signal)
    return this.exited
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
  }
}

/** What useSentFile sets up for a describe block (filled in by its beforeAll). */
export interface SentFile {
  readonly dir: string
  /** The file `haul send` serves, and its SHA-256. */
  readonly src: string
  readonly digest: string
  readonly ticket: string
  /** Starts a `haul` process killed after the test that started it. */
  start(args: string[]): Running
}

/**
 * For a describe block: a file of `size` random bytes in a temporary folder, served by one
 * `haul send --json` for the whole block; processes started with `start` are killed after each
 * test.
 */
export function useSentFile(size: number): SentFile {
  const procs: Running[] = []
  let sender: Running | undefined
  let cleanup: (() => Promise<void>) | undefined
  const sent = {
    dir: '',
    src: '',
    digest: '',
    ticket: '',
    start: (args: string[]): Running => {
      const p = new Running(args)
      procs.push(p)
      return p
    },
  }
  beforeAll(async () => {
    const made = await tempDir()
    cleanup = made.cleanup
    sent.dir = made.dir
    sent.src = join(made.dir, 'data.bin')
    await writeFile(sent.src, size, 'random')
    sent.digest = await sha256File(sent.src)
    sender = new Running(['send', sent.src, '--json'])
    sent.ticket = (await sender.event('published')).ticket as string
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(async () => {
    sender?.kill()
    await cleanup?.()
  })
  return sent
}
