import { assign, fromPromise, setup } from 'xstate'
import { AbortedError, type HaulError, InternalError, isHaulError } from '../errors.ts'

/**
 * One transfer's life, as an XState v5 machine.
 *
 *   resolving ──► fetching ──► finalizing ──► done
 *       │             │             │
 *       └─────────────┴──── error ──┴──► failed
 *   (any non-final state) ── cancel ──► cancelled
 *
 * The work of each state is one step of the `TransferJob` given as input, run
 * as a named promise actor; the machine itself holds no I/O, so it is tested
 * on its own with a stand-in job. XState aborts an invoked actor's `signal`
 * when its state is left; the engine passes that signal all the way down
 * (streams, budget waits, worker tasks), which is how `cancel` stops real work.
 */

export type TransferStatus = 'resolving' | 'fetching' | 'finalizing' | 'done' | 'failed' | 'cancelled'

export interface TransferOutput {
  readonly status: 'done' | 'failed' | 'cancelled'
  readonly error?: HaulError
}

/** The work behind each state. Every step must honour `signal`: it aborts when the state is left. */
export interface TransferJob {
  resolve(signal: AbortSignal): Promise<void>
  fetchChunks(signal: AbortSignal): Promise<void>
  finalize(signal: AbortSignal): Promise<void>
}

interface Context {
  job: TransferJob
  status: TransferOutput['status'] | undefined
  error: HaulError | undefined
}

export type TransferEvent = { type: 'cancel' }

type Step = keyof TransferJob
const step = (name: Step) => fromPromise<void, TransferJob>(({ input, signal }) => input[name](signal))

function toHaulError(err: unknown): HaulError {
  if (isHaulError(err)) return err
  if (err instanceof Error && err.name === 'AbortError') return new AbortedError(undefined, { cause: err })
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err })
}

export const transferMachine = setup({
  types: {
    context: {} as Context,
    events: {} as TransferEvent,
    input: {} as TransferJob,
    output: {} as TransferOutput,
  },
  actors: {
    resolve: step('resolve'),
    fetchChunks: step('fetchChunks'),
    finalize: step('finalize'),
  },
  actions: {
    fail: assign({ error: (_, params: { error: unknown }) => toHaulError(params.error) }),
  },
}).createMachine({
  id: 'transfer',
  context: ({ input }) => ({ job: input, status: undefined, error: undefined }),
  initial: 'resolving',
  on: {
    cancel: '.cancelled',
  },
  states: {
    resolving: {
      description: 'Connect to the peer, fetch and check the descriptor header, open <dest>.part.',
      invoke: {
        src: 'resolve',
        input: ({ context }) => context.job,
        onDone: 'fetching',
        onError: {
          target: 'failed',
          actions: { type: 'fail', params: ({ event }) => ({ error: event.error }) },
        },
      },
    },
    fetching: {
      description: 'Pull chunks in windows; each is verified against its leaf before it is written.',
      invoke: {
        src: 'fetchChunks',
        input: ({ context }) => context.job,
        onDone: 'finalizing',
        onError: {
          target: 'failed',
          actions: { type: 'fail', params: ({ event }) => ({ error: event.error }) },
        },
      },
    },
    finalizing: {
      description: 'Every chunk verified and written: fsync, rename <dest>.part to <dest>.',
      invoke: {
        src: 'finalize',
        input: ({ context }) => context.job,
        onDone: 'done',
        onError: {
          target: 'failed',
          actions: { type: 'fail', params: ({ event }) => ({ error: event.error }) },
        },
      },
    },
    done: {
      type: 'final',
      description: 'The file is whole and verified at its destination.',
      entry: assign({ status: 'done' as const }),
    },
    failed: {
      type: 'final',
      description: 'Stopped with a typed error; <dest>.part is kept.',
      entry: assign({ status: 'failed' as const }),
    },
    cancelled: {
      type: 'final',
      description: 'Cancelled by the caller; in-flight work was aborted.',
      entry: assign({ status: 'cancelled' as const }),
    },
  },
  output: ({ context }) => {
    const status = context.status ?? 'failed'
    return context.error === undefined ? { status } : { status, error: context.error }
  },
})
