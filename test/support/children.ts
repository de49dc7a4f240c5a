import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('./peer-child.ts', import.meta.url))

export type PeerEvent = { event: string; [k: string]: unknown }

/** A peer-child.ts process, with its JSON events as they arrive. */
export interface PeerProcess {
  readonly proc: ChildProcess
  readonly events: PeerEvent[]
  /** Resolves with the first event (past or future) matching `pred`; rejects if the process exits first. */
  waitFor(pred: (e: PeerEvent) => boolean, what?: string): Promise<PeerEvent>
  /** Calls `f` on every event from now on. */
  onEvent(f: (e: PeerEvent) => void): void
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr(): string
}

export function spawnPeer(
  config: Record<string, unknown>,
  opts: {
    uid?: number
    gid?: number
    /** How to run the command, e.g. Topology.argv bound to a namespace. @default as it is */
    argv?: (command: string, args: string[]) => [string, ...string[]]
  } = {},
): PeerProcess {
  // process.execPath is the Node 24 running the tests; it strips the types of the .ts script.
  const args = ['--no-warnings', SCRIPT, JSON.stringify(config)]
  const [file, ...rest] = opts.argv?.(process.execPath, args) ?? [process.execPath, ...args]
  const proc = spawn(file, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid === undefined ? {} : { uid: opts.uid }),
    ...(opts.gid === undefined ? {} : { gid: opts.gid }),
  })
  const events: PeerEvent[] = []
  const listeners: Array<(e: PeerEvent) => void> = []
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => {
    if (err.length < 64 * 1024) err += d.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  )
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let e: PeerEvent
    try {
      e = JSON.parse(line) as PeerEvent
    } catch {
      return
    }
    events.push(e)
    for (const f of listeners) f(e)
  })
  return {
    proc,
    events,
    exited,
    stderr: () => err,
    onEvent: (f) => listeners.push(f),
    waitFor: (pred, what = 'event') =>
      new Promise<PeerEvent>((resolve, reject) => {
        const past = events.find(pred)
        if (past !== undefined) return resolve(past)
        listeners.push((e) => {
          if (pred(e)) resolve(e)
        })
        void exited.then(({ code, signal }) => {
          // Lines may still be in flight when 'exit' fires; give them a turn.
          setTimeout(() => {
            const late = events.find(pred)
            if (late !== undefined) resolve(late)
            else
              reject(new Error(`peer exited (${code ?? signal}) before ${what}; stderr: ${err.slice(-2000)}`))
          }, 50)
        })
      }),
  }
}
