import { type ActorRefFrom, createActor, sendTo, setup, spawnChild, stopChild } from 'xstate'
import { type HaulError, InvalidArgumentError } from '../errors.ts'
import { type TransferJob, type TransferOutput, transferMachine } from './transfer-machine.ts'

type ShardEvent =
  | { type: 'transfer.start'; id: string; job: TransferJob }
  | { type: 'transfer.cancel'; id: string }
  | { type: 'transfer.reap'; id: string }

/**
 * Parents of transfer machines. XState copies a parent's whole `children` record on every spawn
 * and stop (and its snapshot on every event), so one parent of n transfers costs O(n) per
 * transfer: with 64 admitted, ~13 KB of garbage per transfer in spawn and reap alone (allocation
 * profile, 3,000 transfers). Spread over `SHARDS` parents, each holds about n / SHARDS.
 */
const shardMachine = setup({
  types: { events: {} as ShardEvent },
  actors: { transfer: transferMachine },
}).createMachine({
  id: 'haul-transfers',
  on: {
    'transfer.start': {
      actions: spawnChild('transfer', {
        id: ({ event }) => event.id,
        input: ({ event }) => (event as Extract<ShardEvent, { type: 'transfer.start' }>).job,
      }),
    },
    'transfer.cancel': { actions: sendTo(({ event }) => event.id, { type: 'cancel' }) },
    'transfer.reap': { actions: stopChild(({ event }) => event.id) },
  },
})

/** Parents the transfer machines are spread over, by default. */
export const SHARDS = 64
const shardId = (i: number): string => `transfers-${i}`

/** One actor system per engine: the root's children are the shards, theirs the transfer machines. */
function engineMachine(shards: number) {
  return setup({ actors: { shard: shardMachine } }).createMachine({
    id: 'haul-engine',
    invoke: Array.from({ length: shards }, (_, i) => ({ src: 'shard' as const, id: shardId(i) })),
  })
}

export type TransferActor = ActorRefFrom<typeof transferMachine>
type ShardActor = ActorRefFrom<typeof shardMachine>

/**
 * A shard and the name its transfer machine has there. Names are slots reused once reaped, not
 * the transfer id: XState memoizes, on the parent's state node (shared by every actor of the
 * machine), which transitions an event type selects, and a child's end is the event type
 * `xstate.done.actor.<child name>`. Named by transfer id, that cache kept one entry per transfer
 * ever run, ~115 bytes each, for the life of the engine (160,000 transfers: heap +18 MB).
 */
interface Placement {
  readonly shard: number
  readonly slot: number
}

const childName = (slot: number): string => `t${slot}`

/** An engine's running transfer machines, by transfer id. Started on construction. */
export class TransferSystem {
  readonly #root: ActorRefFrom<ReturnType<typeof engineMachine>>
  readonly #shards: ShardActor[]
  /** Live transfers per shard; a new one goes to the least loaded. */
  readonly #load: number[]
  /** Per shard, slots freed by reaped transfers; a shard's slots never outnumber its peak load. */
  readonly #freeSlots: number[][]
  readonly #placed = new Map<string, Placement>()

  /** `shards`: how many parents (1 is XState's plain layout, kept for the benchmark's comparison). */
  constructor(shards = SHARDS) {
    if (!Number.isSafeInteger(shards) || shards < 1)
      throw new InvalidArgumentError('shards must be a positive integer')
    this.#root = createActor(engineMachine(shards))
    this.#root.start()
    const children = this.#root.getSnapshot().children
    this.#shards = Array.from({ length: shards }, (_, i) => children[shardId(i)] as ShardActor)
    this.#load = new Array<number>(shards).fill(0)
    this.#freeSlots = Array.from({ length: shards }, () => [])
  }

  /** The engine's actor system: every transfer machine belongs to it. */
  get system(): TransferActor['system'] {
    return this.#root.system
  }

  /** Spawns `job`'s machine under `id` and returns it, already running. */
  spawn(id: string, job: TransferJob): TransferActor {
    if (this.#placed.has(id)) throw new InvalidArgumentError(`transfer ${id} is already running`)
    let shard = 0
    for (let i = 1; i < this.#load.length; i++) if (this.#load[i]! < this.#load[shard]!) shard = i
    // A new slot only when none is free, and then slots 0 .. load − 1 are all in use.
    const slot = this.#freeSlots[shard]!.pop() ?? this.#load[shard]!
    const name = childName(slot)
    this.#placed.set(id, { shard, slot })
    this.#load[shard]!++
    const parent = this.#shards[shard]!
    parent.send({ type: 'transfer.start', id: name, job })
    return parent.getSnapshot().children[name] as TransferActor
  }

  cancel(id: string): void {
    const p = this.#placed.get(id)
    if (p !== undefined) this.#shards[p.shard]!.send({ type: 'transfer.cancel', id: childName(p.slot) })
  }

  /** Stops a finished transfer's machine, so its id is free again. */
  reap(id: string): void {
    const p = this.#placed.get(id)
    if (p === undefined) return
    this.#placed.delete(id)
    this.#shards[p.shard]!.send({ type: 'transfer.reap', id: childName(p.slot) })
    this.#load[p.shard]!--
    this.#freeSlots[p.shard]!.push(p.slot)
  }

  /** Transfer machines per shard (for tests: how the load is spread). */
  shardLoads(): number[] {
    return this.#shards.map((s) => Object.keys(s.getSnapshot().children).length)
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
