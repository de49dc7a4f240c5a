import { type ActorRefFrom, createActor, sendTo, setup, spawnChild, stopChild } from 'xstate'
import type { HaulError } from '../errors.ts'
import { type TransferJob, type TransferOutput, transferMachine } from './transfer-machine.ts'

type EngineEvent =
  | { type: 'transfer.start'; id: string; job: TransferJob }
  | { type: 'transfer.cancel'; id: string }
  | { type: 'transfer.reap'; id: string }

/** One actor system per engine: every transfer machine is a child of this root. */
const engineMachine = setup({
  types: { events: {} as EngineEvent },
  actors: { transfer: transferMachine },
}).createMachine({
  id: 'haul-engine',
  on: {
    'transfer.start': {
      actions: spawnChild('transfer', {
        id: ({ event }) => event.id,
        input: ({ event }) => (event as Extract<EngineEvent, { type: 'transfer.start' }>).job,
      }),
    },
    'transfer.cancel': { actions: sendTo(({ event }) => event.id, { type: 'cancel' }) },
    'transfer.reap': { actions: stopChild(({ event }) => event.id) },
  },
})

export type TransferActor = ActorRefFrom<typeof transferMachine>

/** An engine's running transfer machines, by transfer id. Started on construction. */
export class TransferSystem {
  readonly #root = createActor(engineMachine)

  constructor() {
    this.#root.start()
  }

  /** Spawns `job`'s machine under `id` and returns it, already running. */
  spawn(id: string, job: TransferJob): TransferActor {
    this.#root.send({ type: 'transfer.start', id, job })
    return this.#root.getSnapshot().children[id] as TransferActor
  }

  cancel(id: string): void {
    this.#root.send({ type: 'transfer.cancel', id })
  }

  /** Stops a finished transfer's machine, so its id is free again. */
  reap(id: string): void {
    this.#root.send({ type: 'transfer.reap', id })
  }

  stop(): void {
    this.#root.stop()
  }
}

/** The machine's output once it is done; a machine that errors counts as failed with that error. */
export function outputOf(actor: TransferActor): Promise<TransferOutput> {
  return new Promise<TransferOutput>((resolve) => {
    const sub = actor.subscribe({
      next: (snap) => {
        if (snap.status !== 'done') return
        sub.unsubscribe()
        resolve(snap.output)
      },
      error: (err) => resolve({ status: 'failed', error: err as HaulError }),
    })
    // Already done before we subscribed: no further snapshot will come.
    const now = actor.getSnapshot()
    if (now.status === 'done') {
      sub.unsubscribe()
      resolve(now.output)
    }
  })
}
