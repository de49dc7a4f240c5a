/**
 * Benches whose engines run in child processes (fork with IPC): starting them, waiting for their
 * messages, and a child's main that exits with its outcome.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { ENGINE_NODE_FLAGS } from '../../src/process-flags.ts'

/** Forks `script` with `args`, run with the flags the `haul` bin uses (src/process-flags.ts). */
export function forkPeer(script: string, args: string[]): ChildProcess {
  const child = fork(script, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...ENGINE_NODE_FLAGS],
  })
  // A message to a child that has just exited fails; its exit is what the bench reports.
  child.on('error', () => {})
  return child
}

/** The child's next message of `type`; rejects if it exits first. */
export function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string }): void => {
      if (m.type !== type) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(m as T)
    }
    const onExit = (code: number | null): void => {
      child.off('message', onMessage)
      reject(new Error(`child exited ${code} before '${type}'`))
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Runs a child's `main` and exits with 0, or prints the failure and exits with 1. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
}
